"""Packing a round's devices into cohorts: balanced by work, sized for the workers.

Each cohort becomes one message (one Flower node's work). ``num_cohorts`` asks for about
``per_worker`` messages per worker, so both cores stay busy whatever the participation, and never
more than ``max_devices`` devices in one cohort. ``pack`` spreads devices over cohorts by their
cost (longest first onto the lightest cohort), so cohorts finish together. Results never depend
on the packing: each device computes alone, and sums are exact up to float64 rounding.
"""

from __future__ import annotations

import heapq
import math

import numpy as np


def num_cohorts(num_devices: int, workers: int, per_worker: int, max_devices: int) -> int:
    if num_devices == 0:
        return 0
    wanted = max(workers * per_worker, math.ceil(num_devices / max_devices))
    return min(num_devices, wanted)


def pack(devices: np.ndarray, cost: np.ndarray, cohorts: int) -> list[np.ndarray]:
    """Split ``devices`` into ``cohorts`` groups of nearly equal total ``cost[device]``."""
    devices = np.asarray(devices, dtype=np.int64)
    if devices.size == 0 or cohorts <= 0:
        return []
    cohorts = min(cohorts, devices.size)
    order = devices[np.lexsort((devices, -cost[devices]))]  # costly first, ties by number
    heap = [(0.0, c) for c in range(cohorts)]
    members: list[list[int]] = [[] for _ in range(cohorts)]
    for device in order.tolist():
        load, c = heapq.heappop(heap)
        members[c].append(device)
        heapq.heappush(heap, (load + float(cost[device]) + 1.0, c))
    return [np.sort(np.array(m, dtype=np.int64)) for m in members if m]


class Packer:
    """Packs devices into cohorts for a transport: about ``per_worker`` cohorts per worker, at
    most ``max_devices`` devices each, balanced by ``cost`` (a device's simulated work: its
    number of training interactions — simulator bookkeeping, never sent to the server).

    ``partition`` (per device a key, e.g. its tier under ``federated.method: per-tier``, whose
    tiers train separate tables): no cohort mixes two keys; each key's devices get their share
    of the cohorts (at least one), so an exchange uses at most one cohort more per key."""

    def __init__(
        self,
        cost: np.ndarray,
        workers: int,
        per_worker: int,
        max_devices: int,
        partition: np.ndarray | None = None,
    ) -> None:
        self.cost = np.asarray(cost, dtype=np.float64)
        self.workers, self.per_worker, self.max_devices = workers, per_worker, max_devices
        self.partition = None if partition is None else np.asarray(partition)

    def max_cohorts(self) -> int:
        """The most cohorts any exchange uses (the number of nodes a transport needs)."""
        count = num_cohorts(self.cost.size, self.workers, self.per_worker, self.max_devices)
        if self.partition is None:
            return count
        return min(self.cost.size, count + np.unique(self.partition).size)

    def __call__(self, devices: np.ndarray) -> list[np.ndarray]:
        devices = np.asarray(devices, dtype=np.int64)
        count = num_cohorts(len(devices), self.workers, self.per_worker, self.max_devices)
        if self.partition is None:
            return pack(devices, self.cost, count)
        cohorts: list[np.ndarray] = []
        keys = self.partition[devices]
        for key in np.unique(keys):
            mine = devices[keys == key]
            share = max(1, round(count * mine.size / devices.size))
            cohorts += pack(mine, self.cost, max(share, math.ceil(mine.size / self.max_devices)))
        return cohorts
