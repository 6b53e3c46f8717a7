"""A fleet's system profiles: per device its training speed, bandwidths, latency and availability.

Arrays are indexed by device number, as ``fedrule.fleet.Fleet``'s. A quantity that a scenario
does not give costs nothing: its speed or bandwidth is ``inf`` (no seconds), its latency 0, so a
study of networks alone needs no compute speeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.systems.availability.base import Availability

QUANTITIES: tuple[str, ...] = ("examples_per_second", "download_mbps", "upload_mbps", "latency_s")
"""Every per-device quantity, in the order of a device's profile words (``draws``)."""

RATES: frozenset[str] = frozenset({"examples_per_second", "download_mbps", "upload_mbps"})
"""The quantities that divide work (must be > 0); the others add seconds (must be >= 0)."""

UNITS = {
    "examples_per_second": "training examples per second (one example: a positive and its "
    "negatives, once)",
    "download_mbps": "Mbit/s from server to device (1 Mbit = 10^6 bits)",
    "upload_mbps": "Mbit/s from device to server",
    "latency_s": "seconds per message exchange (request out, reply back)",
}

NO_COST = {"examples_per_second": np.inf, "download_mbps": np.inf, "upload_mbps": np.inf}


@dataclass(frozen=True, eq=False)
class SystemProfiles:
    """Per-device arrays (float64, index = device number) and the fleet's availability."""

    examples_per_second: np.ndarray
    download_mbps: np.ndarray
    upload_mbps: np.ndarray
    latency_s: np.ndarray
    availability: Availability

    def __post_init__(self) -> None:
        sizes = {np.shape(getattr(self, q)) for q in QUANTITIES}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"profile arrays must be 1-d of one length, got shapes {sizes}")
        for name in QUANTITIES:
            values = np.asarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, values)
            if np.isnan(values).any():
                raise ValueError(f"{name} holds NaN")
            if name in RATES and not (values > 0).all():
                raise ValueError(f"{name} must be > 0 (inf: no cost)")
            if name not in RATES and not (np.isfinite(values) & (values >= 0)).all():
                raise ValueError(f"{name} must be finite and >= 0")

    @property
    def size(self) -> int:
        return int(self.latency_s.size)

    @staticmethod
    def from_quantities(
        values: dict[str, np.ndarray], availability: Availability
    ) -> SystemProfiles:
        return SystemProfiles(**{q: values[q] for q in QUANTITIES}, availability=availability)
