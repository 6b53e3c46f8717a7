"""The per-device update pipeline: each device's own update, processed BEFORE any sum.

Local training leaves every device of a cohort with its own update: one delta row per item row
it touched (positives and sampled negatives), which blocks of that row it held, and its weight
(its number of training examples). ``UpdateStep``s run on each device's update alone — clipping,
noise and compression go here, on the device side — and only then does ``sum_cohort`` add the
cohort's updates into what a node sends back.

Every step is batched over the cohort (segment sums over ``row_device``) but is exactly what each
device would compute alone: nothing in a step mixes two devices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class DeviceDeltas:
    """Updates of a cohort's devices, one entry per (device, touched item row).

    ``row_device[r]`` is the cohort position of the device that owns entry r, ``row_item[r]`` the
    item, ``delta[r]`` its change (d values) and ``kept[r]`` its held blocks (1/0 per block).
    ``weight[k]`` is device k's aggregation weight (its number of training examples).
    """

    row_device: np.ndarray
    row_item: np.ndarray
    delta: np.ndarray
    kept: np.ndarray
    weight: np.ndarray

    @staticmethod
    def empty(weight: np.ndarray, dim: int, num_blocks: int) -> DeviceDeltas:
        none = np.zeros(0, dtype=np.int64)
        return DeviceDeltas(
            none,
            none,
            np.zeros((0, dim), np.float32),
            np.zeros((0, num_blocks), np.float32),
            np.asarray(weight, dtype=np.float64),
        )

    @property
    def num_devices(self) -> int:
        return int(self.weight.size)

    def norms(self) -> np.ndarray:
        """L2 norm of each device's whole update (over all its rows and columns)."""
        squares = (self.delta.astype(np.float64) ** 2).sum(axis=1)
        return np.sqrt(np.bincount(self.row_device, squares, minlength=self.num_devices))


class UpdateStep(Protocol):
    """One stage of the device-side pipeline: a device's update in, a device's update out."""

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas: ...


@dataclass(frozen=True)
class ClipUpdate:
    """Scale each device's whole update to L2 norm at most ``max_norm`` (DP-FedAvg clipping)."""

    max_norm: float

    def __call__(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        norms = deltas.norms()
        scale = np.minimum(1.0, self.max_norm / np.maximum(norms, 1e-30))
        delta = deltas.delta * scale[deltas.row_device, None].astype(np.float32)
        return replace(deltas, delta=delta)


@dataclass(frozen=True)
class UpdatePipeline:
    """The device-side steps, in order (empty: the update goes as it is)."""

    steps: tuple[UpdateStep, ...] = ()

    def apply(self, deltas: DeviceDeltas, rngs: list[np.random.Generator]) -> DeviceDeltas:
        for step in self.steps:
            deltas = step(deltas, rngs)
        return deltas


@dataclass
class CohortUpdate:
    """Example-weighted sums over a cohort's devices, per item row they touched.

    ``sum_wdelta[r] = sum_k w_k * delta_k[r]`` and ``sum_w[r, b] = sum_k w_k`` over the devices k
    that updated block b of item ``rows[r]`` (w_k = the device's weight). ``bytes_up`` is what
    the cohort's devices uploaded in all (each touched row: its kept blocks and a 4-byte id).
    """

    rows: np.ndarray
    sum_wdelta: np.ndarray
    sum_w: np.ndarray
    bytes_up: int
    loss_sum: float = 0.0
    loss_count: float = 0.0


def sum_cohort(deltas: DeviceDeltas, bytes_per_block: int) -> CohortUpdate:
    """Add the (already processed) updates of a cohort's devices, weighted by their weights."""
    items, inverse = np.unique(deltas.row_item, return_inverse=True)
    index = torch.from_numpy(inverse.astype(np.int64))
    w = torch.from_numpy(deltas.weight[deltas.row_device][:, None])
    delta = torch.from_numpy(deltas.delta).double() * w
    kept = torch.from_numpy(deltas.kept).double() * w
    sum_wdelta = torch.zeros(items.size, delta.shape[1], dtype=torch.float64)
    sum_w = torch.zeros(items.size, kept.shape[1], dtype=torch.float64)
    sum_wdelta.index_add_(0, index, delta)
    sum_w.index_add_(0, index, kept)
    bytes_up = int(deltas.kept.sum() * bytes_per_block + 4 * deltas.row_item.size)
    return CohortUpdate(items, sum_wdelta.numpy(), sum_w.numpy(), bytes_up)
