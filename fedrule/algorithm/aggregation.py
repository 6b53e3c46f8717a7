"""Row- and block-wise FedAvg: each entry averages over the devices that actually updated it.

A device (or a cohort's sum over its devices) contributes, per item row it touched,
``sum_wdelta`` (example-weighted update) and ``sum_w`` (example weight per block). Entries nobody
updated keep their value. With every device updating every entry this is plain FedAvg. No flwr
import here: the arithmetic is tested on its own.
"""

from __future__ import annotations

import numpy as np


class DivergedError(ArithmeticError):
    """The aggregated table is no longer finite (local training diverged)."""


def finite(table: np.ndarray) -> np.ndarray:
    if not np.isfinite(table).all():
        raise DivergedError
    return table


class RowBlockAggregator:
    """Accumulates weighted updates of an n x d table cut into B column blocks."""

    def __init__(self, n_items: int, dim: int, num_blocks: int) -> None:
        self.dim = dim
        self.num_blocks = num_blocks
        self.sum_wdelta = np.zeros((n_items, dim), dtype=np.float64)
        self.sum_w = np.zeros((n_items, num_blocks), dtype=np.float64)

    def add(self, rows: np.ndarray, sum_wdelta: np.ndarray, sum_w: np.ndarray) -> None:
        if rows.size == 0:
            return
        if rows.size != np.unique(rows).size:  # repeated rows: accumulate with np.add.at
            np.add.at(self.sum_wdelta, rows, sum_wdelta)
            np.add.at(self.sum_w, rows, sum_w)
        else:
            self.sum_wdelta[rows] += sum_wdelta
            self.sum_w[rows] += sum_w

    def mean_update(self) -> tuple[np.ndarray, np.ndarray]:
        """The weighted average update per entry (0 where nobody updated), and which entries
        some device updated (n x d each)."""
        width = self.dim // self.num_blocks
        weight = np.repeat(self.sum_w, width, axis=1)
        touched = weight > 0
        step = np.divide(self.sum_wdelta, weight, out=np.zeros_like(self.sum_wdelta), where=touched)
        return step, touched

    def apply(self, table: np.ndarray, server_lr: float = 1.0) -> np.ndarray:
        """``table + server_lr * average update`` per updated entry (a new array)."""
        step, _ = self.mean_update()
        return finite((table + server_lr * step).astype(table.dtype))

    @property
    def updated_entries(self) -> int:
        return int((self.sum_w > 0).sum())


class PrivateAggregator(RowBlockAggregator):
    """DP-FedAvg's aggregate. Devices send unit-weight updates clipped to L2 norm C; the mean
    update is ``(sum + N(0, noise_std^2)) / denominator`` on every entry that some device could
    have touched (``offered``: the whole table in full mode, the union of offered blocks in
    budgeted mode), with a fixed denominator (the expected number of sampled devices) instead
    of the data-dependent per-entry counts, which would break the sensitivity bound."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        num_blocks: int,
        *,
        denominator: float,
        noise_std: float,
        offered: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(n_items, dim, num_blocks)
        self.denominator = denominator
        self.noise_std = noise_std
        self.offered = np.asarray(offered, dtype=bool)  # n x B
        self.rng = rng
        self._mean: tuple[np.ndarray, np.ndarray] | None = None

    def mean_update(self) -> tuple[np.ndarray, np.ndarray]:
        if self._mean is None:  # the noise is drawn once per round
            touched = np.repeat(self.offered, self.dim // self.num_blocks, axis=1)
            noise = self.rng.standard_normal(self.sum_wdelta.shape) * self.noise_std
            total = np.where(touched, self.sum_wdelta + noise, 0.0)
            self._mean = (total / self.denominator, touched)
        return self._mean
