"""Which device-systems keys a scenario sets (non-default), by dotted path.

Training rounds do not consult the systems yet (docs/systems.md, "How training rounds use
this"): until they do, a run that sets any of these keys is refused with a one-line error rather
than run as if they were not there.
"""

from __future__ import annotations

import dataclasses

from fedrule.scenario.schema import RoundPolicyConfig, Scenario, SystemsConfig
from fedrule.systems.profiles import QUANTITIES


def _changed(value: object, default: object, path: str) -> list[str]:
    if dataclasses.is_dataclass(value):
        out = []
        for field in dataclasses.fields(value):
            out += _changed(
                getattr(value, field.name), getattr(default, field.name), f"{path}.{field.name}"
            )
        return out
    return [] if value == default else [path]


def keys_in_use(scenario: Scenario) -> list[str]:
    """The systems keys of ``scenario`` that differ from their defaults."""
    keys = [
        f"fleet.tiers[{i}].{q}"
        for i, tier in enumerate(scenario.fleet.tiers)
        for q in QUANTITIES
        if getattr(tier, q) is not None
    ]
    keys += _changed(scenario.fleet.systems, SystemsConfig(), "fleet.systems")
    keys += _changed(scenario.federated.round_policy, RoundPolicyConfig(), "federated.round_policy")
    return keys
