"""Conversion between numpy arrays and Flower records."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord


def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of named numpy arrays (any shape, including empty and 0-d)."""
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {key: record[key].numpy() for key in record}


def bytes_array(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload, dtype=np.uint8)
