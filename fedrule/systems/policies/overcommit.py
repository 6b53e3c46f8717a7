"""``overcommit`` (FedScale): sample ceil((1 + o) K) devices and keep the first K to finish;
the others are late (stragglers), those that go offline before they finish are offline. The
round ends with the K-th arrival (FedScale's ``tictak_client_tasks``: the round's duration is
the K-th completion time among the clients still active); with fewer than K finishing, at the
last arrival or dropout. Ties in time go to the lower device number."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedrule.systems.clock import Clock
from fedrule.systems.policies.base import (
    KEPT,
    LATE,
    OFFLINE,
    RoundOutcome,
    checked,
    finishing,
    last_event_s,
)


@dataclass(frozen=True)
class OvercommitPolicy:
    name: ClassVar[str] = "overcommit"
    synchronous: ClassVar[bool] = True

    overcommit: float

    def __post_init__(self) -> None:
        if not self.overcommit > 0:
            raise ValueError("overcommit must be > 0")

    def num_candidates(self, target: int) -> int:
        # a hair below each whole number is that number (1.3 * 10 is 13.000000000000002)
        return math.ceil(round((1 + self.overcommit) * target, 9))

    def decide(
        self,
        clock: Clock,
        devices: np.ndarray,
        seconds: np.ndarray,
        offline_at_s: np.ndarray,
        target: int,
    ) -> RoundOutcome:
        devices = checked(devices, seconds, offline_at_s)
        seconds = np.asarray(seconds, dtype=np.float64)
        k = int(target)
        done = finishing(clock, seconds, offline_at_s)
        finishers = np.flatnonzero(done.finishes)
        order = finishers[np.lexsort((devices[finishers], seconds[finishers]))]
        first_k = order[:k]
        status = np.full(devices.size, LATE, dtype=np.int8)
        status[~done.finishes] = OFFLINE
        status[first_k] = KEPT
        finish = np.full(devices.size, np.inf)
        finish[first_k] = seconds[first_k]
        if first_k.size == k and k > 0:
            duration = float(seconds[first_k[-1]])
        else:
            duration = last_event_s(finish, done.drop_s)
        return RoundOutcome(devices, status, finish, duration)


def build(settings: object) -> OvercommitPolicy:
    return OvercommitPolicy(float(settings.overcommit))
