"""Simulated time: what each device's part of a phase costs, and the one global clock.

A device's seconds in a phase (method.md §10) are

    latency_s + bytes_down * 8 / (download_mbps * 10^6)
              + examples * passes / examples_per_second
              + bytes_up * 8 / (upload_mbps * 10^6)

with the bytes the protocol really counts for that device (its payload's length, its upload's
bytes) and, in training, its local examples (its training positives) times the local epochs.
Labelling and testing use the same formula with their own work: the table they download, the
validation or test items they score, the sums they send back. The clock never reads the wall
clock: simulated time depends only on the seed, the profiles and the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.systems.profiles import SystemProfiles

BITS_PER_BYTE = 8
BITS_PER_MBIT = 1e6


@dataclass(frozen=True, eq=False)
class PhaseWork:
    """Per device of a phase (aligned with its device array): bytes it downloads, examples it
    processes per pass, bytes it uploads; ``passes`` is the local epochs (1 for evaluation)."""

    bytes_down: np.ndarray
    examples: np.ndarray
    bytes_up: np.ndarray
    passes: int = 1


@dataclass(frozen=True, eq=False)
class DeviceSeconds:
    """The four parts of each device's time in a phase, and their sum (``total``)."""

    latency: np.ndarray
    download: np.ndarray
    compute: np.ndarray
    upload: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.latency + self.download + self.compute + self.upload


def device_seconds(profiles: SystemProfiles, devices: np.ndarray, work: PhaseWork) -> DeviceSeconds:
    """Each device's simulated seconds for its ``work`` (vectorised over ``devices``)."""
    devices = np.asarray(devices, dtype=np.int64)
    down = np.asarray(work.bytes_down, dtype=np.float64)
    examples = np.asarray(work.examples, dtype=np.float64)
    up = np.asarray(work.bytes_up, dtype=np.float64)
    if not (down.shape == examples.shape == up.shape == devices.shape):
        raise ValueError("work arrays must align with the devices")
    return DeviceSeconds(
        latency=profiles.latency_s[devices].copy(),
        download=down * BITS_PER_BYTE / (profiles.download_mbps[devices] * BITS_PER_MBIT),
        compute=examples * work.passes / profiles.examples_per_second[devices],
        upload=up * BITS_PER_BYTE / (profiles.upload_mbps[devices] * BITS_PER_MBIT),
    )


class Clock:
    """The one global simulated time of a run, in seconds from its start."""

    def __init__(self, now_s: float = 0.0) -> None:
        self.now_s = float(now_s)

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds`` (>= 0, finite); returns the new time."""
        if not (np.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"the clock moves forward by a finite time, not {seconds!r}")
        self.now_s += float(seconds)
        return self.now_s

    def wait_until(self, t_s: float) -> float:
        """Move on to ``t_s`` if it lies ahead (a finite time); returns the new time."""
        if not np.isfinite(t_s):
            raise ValueError("the clock cannot wait for ever: no device comes online again")
        self.now_s = max(self.now_s, float(t_s))
        return self.now_s

    def state_dict(self) -> dict[str, float]:
        return {"now_s": self.now_s}

    @staticmethod
    def from_state(state: dict[str, float]) -> Clock:
        return Clock(state["now_s"])

    def __repr__(self) -> str:
        return f"Clock(now_s={self.now_s!r})"
