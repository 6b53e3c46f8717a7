"""The Flower transport: the ONLY package that imports flwr."""
