"""What a profile source or an availability model is built from: the fleet and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fedrule.fleet import Fleet
from fedrule.scenario.schema import SystemsConfig, TierConfig


@dataclass(frozen=True, eq=False)
class SystemsContext:
    """The fleet (device numbers, tiers), the dataset's user ids (what trace files name
    devices by), the tiers' settings, the trace file and the ``fleet.systems`` section.

    ``seed`` is the fleet's seed (``scenario.seeds[0]``, as ``engine.federated.build_fleet``):
    a device's hardware is part of the fleet, the same in every seed of a run."""

    fleet: Fleet
    user_ids: np.ndarray
    tiers: list[TierConfig]
    systems: SystemsConfig = field(default_factory=SystemsConfig)
    trace: str | None = None
    seed: int = 0

    @property
    def num_devices(self) -> int:
        return self.fleet.size

    @cached_property
    def device_of_id(self) -> dict[str, int]:
        """The device number of each device's user id, as trace files write it."""
        return {str(self.user_ids[u]): d for d, u in enumerate(self.fleet.user.tolist())}

    def tier_settings(self) -> list[TierConfig | None]:
        """Per tier of the fleet (``fleet.tier_names``), its ``fleet.tiers`` entry (None: a
        tier that only a trace names)."""
        by_name = {t.name: t for t in self.tiers}
        return [by_name.get(name) for name in self.fleet.tier_names]
