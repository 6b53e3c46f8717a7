"""Runs a scenario's seed (centralised or federated); the only place that starts or joins Ray."""
