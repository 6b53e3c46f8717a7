"""Every device is online at every time (the default: no pattern, today's fleets)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.systems.availability.base import times_of
from fedrule.systems.context import SystemsContext


@dataclass(frozen=True)
class AlwaysOnline:
    num_devices: int

    def online(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return np.ones(np.shape(devices), dtype=bool)

    def online_until(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return np.full(np.shape(devices), np.inf)

    def online_from(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return times_of(devices, t)[1]


def build(context: SystemsContext) -> AlwaysOnline:
    return AlwaysOnline(context.num_devices)
