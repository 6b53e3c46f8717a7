"""Profiles from the tiers: each tier's number or distribution per quantity
(``fleet.tiers[].examples_per_second``, ...), a device drawing from its own stream."""

from __future__ import annotations

import numpy as np

from fedrule.distributions import Distribution, parse_distribution
from fedrule.systems.context import SystemsContext
from fedrule.systems.draws import draw_by_group, profile_uniforms
from fedrule.systems.profiles import NO_COST, QUANTITIES


def tier_distributions(context: SystemsContext, quantity: str) -> list[Distribution | None]:
    """Per tier of the fleet, its distribution of ``quantity`` (None: not given)."""
    out: list[Distribution | None] = []
    for t, tier in enumerate(context.tier_settings()):
        value = None if tier is None else getattr(tier, quantity)
        out.append(None if value is None else parse_distribution(value, _key(context, t, quantity)))
    return out


def _key(context: SystemsContext, tier: int, quantity: str) -> str:
    index = [t.name for t in context.tiers].index(context.fleet.tier_names[tier])
    return f"fleet.tiers[{index}].{quantity}"


def from_tiers(context: SystemsContext, quantities: tuple[str, ...] = QUANTITIES) -> dict:
    """Per quantity, every device's value from its tier (``NO_COST`` where its tier gives none)."""
    devices = np.arange(context.num_devices)
    u = profile_uniforms(context.seed, devices, len(QUANTITIES)) if devices.size else None
    values = {}
    for q in quantities:
        column = QUANTITIES.index(q)
        dists = tier_distributions(context, q)
        missing = NO_COST.get(q, 0.0)
        if u is None or all(d is None for d in dists):
            values[q] = np.full(devices.size, missing)
        else:
            values[q] = draw_by_group(u[:, column], context.fleet.tier, dists, missing)
    return values


def build(context: SystemsContext) -> dict:
    return from_tiers(context)
