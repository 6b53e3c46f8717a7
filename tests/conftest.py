"""Shared fixtures: quiet Flower, a private data folder, tiny synthetic scenarios."""

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


@pytest.fixture
def tiny_scenario() -> dict:
    """A small synthetic centralised scenario that trains in a second or two."""
    return {
        "name": "tiny",
        "data": {
            "source": "synthetic",
            "synthetic": {"users": 200, "items": 120, "interactions_per_user": 20},
        },
        "model": {"dim": 16, "blocks": 4, "groups": 4},
        "train": {"epochs": 4, "batch_size": 512, "eval_every": 2, "lr": 0.01},
        "eval": {"ks": [5, 10], "metric": "ndcg@10"},
    }
