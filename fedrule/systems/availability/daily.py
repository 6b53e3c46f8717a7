"""A daily pattern: each device is online ``hours_per_day`` hours in every period (24 h), from a
phase of its own, uniform over the period and drawn from its stream
``SeedSequence([seed, device, seeds.SYSTEMS_AVAILABILITY])`` (a device online an hour a day at
a time that differs from device to device)."""

from __future__ import annotations

import numpy as np

from fedrule import seeds
from fedrule.systems.availability.periodic import PeriodicWindows
from fedrule.systems.context import SystemsContext
from fedrule.systems.draws import uniforms

HOUR_S = 3600.0


def build(context: SystemsContext) -> PeriodicWindows:
    settings = context.systems.availability
    period_s = settings.period_h * HOUR_S
    devices = np.arange(context.num_devices)
    phase = uniforms(context.seed, devices, seeds.SYSTEMS_AVAILABILITY, 1)[:, 0]
    length = np.full(devices.size, settings.hours_per_day * HOUR_S)
    return PeriodicWindows(phase * period_s, length, period_s)
