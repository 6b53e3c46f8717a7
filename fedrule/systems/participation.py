"""Who took part: per device the rounds it was offered, completed, or dropped as late or offline,
and per tier the summaries a fairness view needs (``rounds_completed``, the share of the tier's
devices that ever completed a round)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.systems.policies.asynchronous import AsyncStep
from fedrule.systems.policies.base import KEPT, LATE, OFFLINE, RoundOutcome

COUNTS = ("offered", "completed", "late", "offline")


@dataclass(eq=False)
class Participation:
    """Per-device counts (int64, index = device number)."""

    offered: np.ndarray
    completed: np.ndarray
    late: np.ndarray
    offline: np.ndarray

    @staticmethod
    def empty(num_devices: int) -> Participation:
        return Participation(*(np.zeros(num_devices, dtype=np.int64) for _ in COUNTS))

    def record_round(self, outcome: RoundOutcome) -> None:
        """A synchronous round: every candidate was offered it."""
        np.add.at(self.offered, outcome.devices, 1)
        for name, status in (("completed", KEPT), ("late", LATE), ("offline", OFFLINE)):
            np.add.at(getattr(self, name), outcome.devices[outcome.status == status], 1)

    def record_step(self, step: AsyncStep) -> None:
        """An asynchronous server step: a device is offered a round when it starts a task;
        completes it when its update is used; is late when its update came too stale."""
        np.add.at(self.offered, step.started, 1)
        np.add.at(self.completed, step.devices, 1)
        np.add.at(self.late, step.stale, 1)
        np.add.at(self.offline, step.offline, 1)

    def by_tier(self, tier: np.ndarray, tier_names: tuple[str, ...]) -> list[dict[str, object]]:
        """Per tier: its devices, summed rounds offered / completed / late / offline, and the
        share of its devices that completed at least one round."""
        rows = []
        for t, name in enumerate(tier_names):
            mine = np.asarray(tier) == t
            devices = int(mine.sum())
            row: dict[str, object] = {"tier": name, "devices": devices}
            for count in COUNTS:
                row[f"rounds_{count}"] = int(getattr(self, count)[mine].sum())
            ever = int((self.completed[mine] > 0).sum())
            row["share_ever_completed"] = ever / devices if devices else float("nan")
            rows.append(row)
        return rows

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).copy() for name in COUNTS}

    @staticmethod
    def from_state(state: dict[str, np.ndarray]) -> Participation:
        return Participation(*(np.asarray(state[name], dtype=np.int64) for name in COUNTS))
