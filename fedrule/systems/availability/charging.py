"""Charging windows: every device is online ``hours_per_day`` hours from ``start_h`` (by default
22:00 for 8 hours: overnight, as a phone on its charger), its start shifted by a uniform offset
in [-spread_h / 2, spread_h / 2] drawn from its own stream
(``SeedSequence([seed, device, seeds.SYSTEMS_AVAILABILITY])``)."""

from __future__ import annotations

import numpy as np

from fedrule import seeds
from fedrule.systems.availability.daily import HOUR_S
from fedrule.systems.availability.periodic import PeriodicWindows
from fedrule.systems.context import SystemsContext
from fedrule.systems.draws import uniforms


def build(context: SystemsContext) -> PeriodicWindows:
    settings = context.systems.availability
    devices = np.arange(context.num_devices)
    shift = uniforms(context.seed, devices, seeds.SYSTEMS_AVAILABILITY, 1)[:, 0] - 0.5
    start = (settings.start_h + shift * settings.spread_h) * HOUR_S
    length = np.full(devices.size, settings.hours_per_day * HOUR_S)
    return PeriodicWindows(start, length, settings.period_h * HOUR_S)
