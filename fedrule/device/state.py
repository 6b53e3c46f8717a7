"""The device state store: what each device keeps between rounds (its private user vector).

It lives on the device side, beside the devices' data, not in a Flower node's state, so that any
node (any worker process) can simulate any device: a node reads the state of the devices a
message names and writes it back after they ran. A message names each device at most once per
phase, so two workers never write the same rows. The file is a plain ``.npy`` array (devices x d),
memory-mapped; a checkpoint is a copy of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FILE = "users.npy"


class DeviceStateStore:
    """User vectors of every device of the fleet, by device number."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / FILE
        self._array: np.ndarray | None = None

    @staticmethod
    def create(folder: str | Path, user_vecs: np.ndarray) -> DeviceStateStore:
        path = Path(folder) / FILE
        np.save(path, np.ascontiguousarray(user_vecs, dtype=np.float32))
        return DeviceStateStore(folder)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r+")
        return self._array

    def get(self, devices: np.ndarray) -> np.ndarray:
        """A private copy of the devices' user vectors."""
        return np.array(self.array[np.asarray(devices, dtype=np.int64)])

    def put(self, devices: np.ndarray, user_vecs: np.ndarray) -> None:
        self.array[np.asarray(devices, dtype=np.int64)] = user_vecs
        self.array.flush()

    def snapshot(self) -> np.ndarray:
        """Every device's state (for checkpoints)."""
        return np.array(self.array)
