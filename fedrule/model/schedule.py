"""Learning-rate schedules over a federated run's rounds.

A device's learning rate in round r is ``local_lr * factor(r)``: ``constant`` (1), ``linear``
(from 1 at round 1 to ``final`` at the last round) or ``cosine`` (half a cosine from 1 to
``final``). Devices compute it from the round number of their training request, so no message
carries it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedrule.names import LR_SCHEDULES


@dataclass(frozen=True)
class LrSchedule:
    kind: str = "constant"
    final: float = 1.0  # the last round's factor
    length: int = 1  # rounds

    def __post_init__(self) -> None:
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"schedule must be one of {LR_SCHEDULES}, not {self.kind!r}")
        if not 0 < self.final <= 1 or self.length < 1:
            raise ValueError("need 0 < final <= 1 and length >= 1")

    def factor(self, step: int) -> float:
        """The learning-rate factor of round ``step`` (1-based; clamped to the run)."""
        if self.kind == "constant" or self.length == 1:
            return 1.0
        t = min(max(step - 1, 0), self.length - 1) / (self.length - 1)
        if self.kind == "linear":
            return 1.0 - (1.0 - self.final) * t
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * t))
