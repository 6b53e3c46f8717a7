"""``sync``: wait for every sampled device; one that goes offline before it finishes is dropped.
The round lasts until the last arrival or dropout, whichever is later (the server learns of a
dropout when it happens, as a transport reports a lost node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedrule.systems.clock import Clock
from fedrule.systems.policies.base import (
    KEPT,
    OFFLINE,
    RoundOutcome,
    checked,
    finishing,
    last_event_s,
)


@dataclass(frozen=True)
class SyncPolicy:
    name: ClassVar[str] = "sync"
    synchronous: ClassVar[bool] = True

    def num_candidates(self, target: int) -> int:
        return target

    def decide(
        self,
        clock: Clock,
        devices: np.ndarray,
        seconds: np.ndarray,
        offline_at_s: np.ndarray,
        target: int,
    ) -> RoundOutcome:
        devices = checked(devices, seconds, offline_at_s)
        done = finishing(clock, seconds, offline_at_s)
        finish = np.where(done.finishes, seconds, np.inf)
        status = np.where(done.finishes, KEPT, OFFLINE).astype(np.int8)
        return RoundOutcome(devices, status, finish, last_event_s(finish, done.drop_s))


def build(settings: object) -> SyncPolicy:
    return SyncPolicy()
