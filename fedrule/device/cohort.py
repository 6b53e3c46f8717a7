"""The private data of a cohort of devices (one user each), as CSR rows over the cohort."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Rows:
    """Items per device of the cohort: ``items[indptr[k]:indptr[k + 1]]`` belong to device k."""

    indptr: np.ndarray
    items: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def of(self, k: int) -> np.ndarray:
        return self.items[self.indptr[k] : self.indptr[k + 1]]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(device index, item) for every entry."""
        return np.repeat(np.arange(self.counts.size), self.counts), self.items

    def take(self, keep: np.ndarray) -> Rows:
        """The rows of the devices at positions ``keep`` (in that order)."""
        starts, stops = self.indptr[keep], self.indptr[keep + 1]
        counts = stops - starts
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        offsets = np.repeat(starts - indptr[:-1], counts)
        return Rows(indptr, self.items[np.arange(indptr[-1]) + offsets])


def gather_rows(indptr: np.ndarray, items: np.ndarray, users: np.ndarray) -> Rows:
    """The CSR rows of ``users`` from a split part (``split.train`` and the like)."""
    return Rows(indptr, items).take(np.asarray(users, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class CohortData:
    """What the devices of one node hold: device numbers and their train/valid/test items."""

    devices: np.ndarray  # int64 fleet device numbers
    train: Rows
    valid: Rows
    test: Rows

    @property
    def size(self) -> int:
        return int(self.devices.size)

    def take(self, keep: np.ndarray) -> CohortData:
        return CohortData(
            self.devices[keep], self.train.take(keep), self.valid.take(keep), self.test.take(keep)
        )
