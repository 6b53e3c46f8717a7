"""Which devices a round may sample: only those online at the clock, drawn from a server stream.

``sample_online`` draws like ``fedrule.algorithm.training.sample_round`` (``rng.choice`` without
replacement, sorted), but from the devices online at ``now_s``: with every device online it
draws exactly the same devices, so that a run without availability patterns keeps its rounds.
"""

from __future__ import annotations

import numpy as np

from fedrule.systems.availability.base import Availability


def online_devices(
    availability: Availability, now_s: float, exclude: np.ndarray | None = None
) -> np.ndarray:
    """The devices online at ``now_s`` (ascending), less ``exclude``."""
    every = np.arange(availability.num_devices)
    pool = every[availability.online(every, now_s)]
    if exclude is not None and np.size(exclude):
        pool = pool[~np.isin(pool, exclude)]
    return pool


def sample_online(
    availability: Availability,
    now_s: float,
    count: int,
    rng: np.random.Generator,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` devices (fewer when fewer are online) drawn without replacement from those
    online at ``now_s``, ascending."""
    pool = online_devices(availability, now_s, exclude)
    return np.sort(rng.choice(pool, size=min(int(count), pool.size), replace=False))


def poisson_online(
    availability: Availability, now_s: float, rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Poisson sampling (DP's amplification): every device draws ``rng.random() < rate``, as
    today's rounds do, and those offline at ``now_s`` are then unavailable (so the draw itself
    does not depend on availability)."""
    every = np.arange(availability.num_devices)
    chosen = every[rng.random(every.size) < rate]
    return chosen[availability.online(chosen, now_s)]


def next_online_s(
    availability: Availability, now_s: float, exclude: np.ndarray | None = None
) -> float:
    """The first time >= ``now_s`` at which some device (not in ``exclude``) is online; ``inf``
    when none ever is again."""
    every = np.arange(availability.num_devices)
    if exclude is not None and np.size(exclude):
        every = every[~np.isin(every, exclude)]
    if every.size == 0:
        return float("inf")
    return float(availability.online_from(every, now_s).min())
