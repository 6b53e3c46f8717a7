"""What devices compute, batched over a cohort of devices: local training, labelling, testing.

Nothing here knows about Flower: a federated node calls these functions for the devices it hosts.
Each device uses only its own data, its own payload and its own random stream.
"""
