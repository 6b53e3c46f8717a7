"""Device systems: speeds, bandwidths, latency and availability over simulated time, the
simulated clock, and the round policies that use them (docs/systems.md).

What the federated algorithm calls (``docs/systems.md``, "How training rounds use this"):

- ``build_profiles(context) -> SystemProfiles | None``: the fleet's profiles (None: a scenario
  without any, whose runs stay as they are);
- ``device_seconds(profiles, devices, work)``: each device's seconds in a phase;
- ``Clock``: the run's simulated time;
- ``sample_online`` / ``poisson_online``: a round's candidates among the devices online now;
- ``make_policy(settings)``: a synchronous ``RoundPolicy`` (``decide``) or the ``AsyncPolicy``
  (``simulate`` -> ``BufferedAsync.next_step``);
- ``Participation``: per-device and per-tier participation.
"""

from __future__ import annotations

from fedrule.systems.clock import Clock, DeviceSeconds, PhaseWork, device_seconds
from fedrule.systems.context import SystemsContext
from fedrule.systems.participation import Participation
from fedrule.systems.policies import (
    KEPT,
    LATE,
    OFFLINE,
    AsyncPolicy,
    AsyncStep,
    RoundOutcome,
    RoundPolicy,
    make_policy,
)
from fedrule.systems.profiles import QUANTITIES, SystemProfiles
from fedrule.systems.sampling import next_online_s, online_devices, poisson_online, sample_online
from fedrule.systems.sources import build_profiles, has_profiles

__all__ = [
    "KEPT",
    "LATE",
    "OFFLINE",
    "QUANTITIES",
    "AsyncPolicy",
    "AsyncStep",
    "Clock",
    "DeviceSeconds",
    "Participation",
    "PhaseWork",
    "RoundOutcome",
    "RoundPolicy",
    "SystemProfiles",
    "SystemsContext",
    "build_profiles",
    "device_seconds",
    "has_profiles",
    "make_policy",
    "next_online_s",
    "online_devices",
    "poisson_online",
    "sample_online",
]
