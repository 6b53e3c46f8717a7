"""The devices' private data on disk, as the simulated devices read it (never the server).

The engine writes one folder per run: ``data.npz`` holds every device's train/valid/test items
(CSR over devices, in device order), its budget and its availability; ``users.npy`` is the
device state store (``fedrule.device.state``). A worker process loads the data once and slices
the cohort a message names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedrule.data.split import SplitData
from fedrule.device.cohort import CohortData, Rows, gather_rows
from fedrule.fleet import Fleet

_CACHE: dict[str, DeviceStore] = {}


@dataclass(frozen=True, eq=False)
class DeviceStore:
    train: Rows
    valid: Rows
    test: Rows
    budget_bytes: np.ndarray
    availability: np.ndarray
    n_items: int

    @property
    def num_devices(self) -> int:
        return int(self.budget_bytes.size)

    def cohort(self, devices: np.ndarray) -> CohortData:
        devices = np.asarray(devices, dtype=np.int64)
        return CohortData(
            devices, self.train.take(devices), self.valid.take(devices), self.test.take(devices)
        )


DATA_FILE = "data.npz"


def write_device_store(
    folder: str | Path, split: SplitData, users: np.ndarray, fleet: Fleet
) -> Path:
    """Write the private data of the fleet's devices (device k holds user ``users[k]``) into
    ``folder``; returns the folder."""
    parts = {}
    for name in ("train", "valid", "test"):
        part = getattr(split, name)
        rows = gather_rows(part.indptr, part.items, users)
        parts[f"{name}_indptr"] = rows.indptr
        parts[f"{name}_items"] = rows.items
    folder = Path(folder)
    np.savez(
        folder / DATA_FILE,
        **parts,
        budget_bytes=fleet.budget_bytes,
        availability=fleet.availability,
        n_items=np.array(split.n_items),
    )
    return folder


def load_device_store(folder: str | Path) -> DeviceStore:
    """The devices' data in ``folder``, loaded once per process."""
    key = str(Path(folder) / DATA_FILE)
    store = _CACHE.get(key)
    if store is None:
        with np.load(key) as data:
            arrays = {k: data[k] for k in data.files}
        store = DeviceStore(
            train=Rows(arrays["train_indptr"], arrays["train_items"]),
            valid=Rows(arrays["valid_indptr"], arrays["valid_items"]),
            test=Rows(arrays["test_indptr"], arrays["test_items"]),
            budget_bytes=arrays["budget_bytes"],
            availability=arrays["availability"],
            n_items=int(arrays["n_items"]),
        )
        _CACHE.clear()  # one run per process at a time
        _CACHE[key] = store
    return store
