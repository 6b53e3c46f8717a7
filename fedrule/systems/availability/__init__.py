"""Availability models by name (``fleet.systems.availability.model``): each a module whose
``build(context)`` returns an ``Availability``. A new model is one module and its line here
(and its name in the schema's ``AvailabilityModel``, until the schema reads registries)."""

from __future__ import annotations

from collections.abc import Callable

from fedrule.systems.availability import always, charging, daily, fedscale, intervals
from fedrule.systems.availability.base import Availability
from fedrule.systems.context import SystemsContext

AVAILABILITY: dict[str, Callable[[SystemsContext], Availability]] = {
    "always": always.build,
    "daily": daily.build,
    "charging": charging.build,
    "intervals": intervals.build,
    "fedscale": fedscale.build,
}


def build_availability(context: SystemsContext) -> Availability:
    return AVAILABILITY[context.systems.availability.model](context)


__all__ = ["AVAILABILITY", "Availability", "build_availability"]
