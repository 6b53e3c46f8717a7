"""``deadline``: a round lasts at most ``deadline_s``; a device that would finish later is late
(dropped and counted), one that goes offline before it finishes (and before the deadline) is
offline. The round ends at the last arrival or dropout when every device is heard of before the
deadline, else at the deadline. A threshold known before the round: a device can apply it
itself (today's straggler deadline, ``faults.deadline``, is this cut-off)."""

from __future__ import annotations

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
class DeadlinePolicy:
    name: ClassVar[str] = "deadline"
    synchronous: ClassVar[bool] = True

    deadline_s: float

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ValueError("deadline_s must be > 0")

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
        seconds = np.asarray(seconds, dtype=np.float64)
        done = finishing(clock, seconds, offline_at_s)
        in_time = seconds <= self.deadline_s
        kept = done.finishes & in_time
        offline = ~done.finishes & (done.drop_s < np.minimum(seconds, self.deadline_s))
        status = np.where(kept, KEPT, np.where(offline, OFFLINE, LATE)).astype(np.int8)
        finish = np.where(kept, seconds, np.inf)
        if (status == LATE).any():
            duration = self.deadline_s
        else:
            duration = min(
                last_event_s(finish, np.where(offline, done.drop_s, np.inf)), self.deadline_s
            )
        return RoundOutcome(devices, status, finish, float(duration))


def build(settings: object) -> DeadlinePolicy:
    return DeadlinePolicy(float(settings.deadline_s))
