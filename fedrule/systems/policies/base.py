"""What a round policy decides, and the interface of the synchronous ones.

A synchronous policy (``sync``, ``deadline``, ``overcommit``) sees a round's candidates (sampled
among the devices online at the round's start), each one's seconds from the round's start to
its upload's arrival (``fedrule.systems.clock.device_seconds``) and the time each goes offline
(``Availability.online_until`` at the round's start), and says which devices the round keeps,
which are late and which went offline before they finished, and how long the round lasts. The
asynchronous policy (``async``) is an event simulation instead (``policies.asynchronous``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from fedrule.systems.clock import Clock

KEPT, LATE, OFFLINE = 0, 1, 2
STATUS_NAMES = ("kept", "late", "offline")


@dataclass(frozen=True, eq=False)
class RoundOutcome:
    """Per candidate (``devices``, ascending): its status and seconds to finish (``inf``: it
    went offline first); the round's simulated duration."""

    devices: np.ndarray
    status: np.ndarray
    finish_s: np.ndarray
    duration_s: float

    @property
    def kept(self) -> np.ndarray:
        return self.devices[self.status == KEPT]

    @property
    def late(self) -> np.ndarray:
        return self.devices[self.status == LATE]

    @property
    def offline(self) -> np.ndarray:
        return self.devices[self.status == OFFLINE]


class RoundPolicy(Protocol):
    name: ClassVar[str]
    synchronous: ClassVar[bool]

    def num_candidates(self, target: int) -> int:
        """How many devices to sample for a round that wants ``target``."""
        ...

    def decide(
        self,
        clock: Clock,
        devices: np.ndarray,
        seconds: np.ndarray,
        offline_at_s: np.ndarray,
        target: int,
    ) -> RoundOutcome:
        """The round's outcome for a round that wants ``target`` devices (sampled:
        ``num_candidates(target)``, fewer when fewer are online); ``clock`` holds the round's
        start (the policy does not move it: the caller advances it by ``duration_s``)."""
        ...


@dataclass(frozen=True, eq=False)
class Finishing:
    """Who of the candidates finishes before going offline, and when the others drop out
    (seconds from the round's start; ``inf`` for those that finish)."""

    finishes: np.ndarray
    drop_s: np.ndarray


def finishing(clock: Clock, seconds: np.ndarray, offline_at_s: np.ndarray) -> Finishing:
    """A device finishes when it is still online as its upload completes:
    ``now + seconds <= offline_at`` (it must stay online from the round's start to the end of
    its upload); one that does not drops out at ``offline_at``."""
    seconds = np.asarray(seconds, dtype=np.float64)
    offline_at_s = np.asarray(offline_at_s, dtype=np.float64)
    finishes = clock.now_s + seconds <= offline_at_s
    return Finishing(finishes, np.where(finishes, np.inf, offline_at_s - clock.now_s))


def checked(devices: np.ndarray, seconds: np.ndarray, offline_at_s: np.ndarray) -> np.ndarray:
    devices = np.asarray(devices, dtype=np.int64)
    if not (np.shape(seconds) == np.shape(offline_at_s) == devices.shape):
        raise ValueError("seconds and offline times must align with the devices")
    if np.size(devices) > 1 and not (np.diff(devices) > 0).all():
        raise ValueError("candidates must be distinct and ascending")
    if not (np.asarray(seconds) >= 0).all():
        raise ValueError("device seconds must be >= 0")
    return devices


def last_event_s(finish_s: np.ndarray, drop_s: np.ndarray) -> float:
    """When the server has heard of every device it waits for: the last arrival or dropout
    (0 for a round without candidates)."""
    times = np.concatenate([finish_s[np.isfinite(finish_s)], drop_s[np.isfinite(drop_s)]])
    return float(times.max()) if times.size else 0.0
