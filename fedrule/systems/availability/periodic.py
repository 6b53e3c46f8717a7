"""One window per period and device: online on [start + k P, start + k P + length) for every k.

The arithmetic of the daily and the charging patterns (``daily``, ``charging``), in closed form:
O(1) per device and query, so that sampling a round over a million devices stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.systems.availability.base import settle_online, times_of


@dataclass(frozen=True, eq=False)
class PeriodicWindows:
    """Per device the start of its window within the period (seconds, any real: taken modulo
    ``period_s``) and its length (seconds, in (0, period_s]); one period for the fleet."""

    start_s: np.ndarray
    length_s: np.ndarray
    period_s: float

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError("period_s must be > 0")
        lengths = np.asarray(self.length_s, dtype=np.float64)
        if not ((lengths > 0) & (lengths <= self.period_s)).all():
            raise ValueError("window lengths must lie in (0, period_s]")

    @property
    def num_devices(self) -> int:
        return int(np.size(self.start_s))

    def _into_window(self, devices: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Seconds since the device's latest window start, and its window length."""
        since = np.mod(t - self.start_s[devices], self.period_s)
        return since, self.length_s[devices]

    def online(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        devices, t = times_of(devices, t)
        since, length = self._into_window(devices, t)
        return since < length

    def online_until(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        devices, t = times_of(devices, t)
        since, length = self._into_window(devices, t)
        until = np.where(since < length, t + (length - since), t)
        return np.where(length >= self.period_s, np.inf, until)

    def online_from(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        devices, t = times_of(devices, t)
        since, length = self._into_window(devices, t)
        found = np.where(since < length, t, t + (self.period_s - since))
        return settle_online(self.online, devices, found)
