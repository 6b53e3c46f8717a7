"""Profile sources by name (``fleet.systems.source``), and the fleet's profiles built from the
scenario.

A source is a module whose ``build(context)`` returns every device's values of
``QUANTITIES`` (a dict of arrays); the availability model is chosen separately
(``fedrule.systems.availability``). A new source is one module and its line here (and its name
in the schema's ``ProfileSource``, until the schema reads registries).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedrule.systems.availability import build_availability
from fedrule.systems.context import SystemsContext
from fedrule.systems.profiles import QUANTITIES, SystemProfiles
from fedrule.systems.sources import fedscale, tiers, trace

SOURCES: dict[str, Callable[[SystemsContext], dict[str, np.ndarray]]] = {
    "tiers": tiers.build,
    "trace": trace.build,
    "fedscale": fedscale.build,
}


def has_profiles(context: SystemsContext) -> bool:
    """Does the scenario give the fleet any system profile? (No: today's runs, timeless.)"""
    settings = context.systems
    return (
        settings.source != "tiers"
        or settings.availability.model != "always"
        or any(getattr(t, q) is not None for t in context.tiers for q in QUANTITIES)
    )


def build_profiles(context: SystemsContext) -> SystemProfiles | None:
    """The fleet's profiles from its source and availability model; None without any."""
    if not has_profiles(context):
        return None
    values = SOURCES[context.systems.source](context)
    return SystemProfiles.from_quantities(values, build_availability(context))


__all__ = ["SOURCES", "build_profiles", "has_profiles"]
