"""Per-device uniforms from each device's own stream, and per-device values drawn with them.

Device ``d`` of a fleet drawn with seed ``s`` takes its profile words from
``SeedSequence([s, d, seeds.SYSTEMS_PROFILE])``: word ``i`` is quantity ``QUANTITIES[i]``'s, so
a device's value depends on the seed, its number and its tier's distribution only — not on the
fleet's size or order, nor on which other quantities are drawn.
"""

from __future__ import annotations

import numpy as np

from fedrule import seeds
from fedrule.distributions import Distribution

_TOP = float(2**53)


def uniforms(seed: int, devices: np.ndarray, salt: int, count: int) -> np.ndarray:
    """``count`` uniforms in (0, 1) per device (devices x count), from its stream [seed, device,
    salt]: 53 bits of each 64-bit word, centred in its cell so that neither 0 nor 1 occurs."""
    devices = np.asarray(devices, dtype=np.int64)
    words = np.empty((devices.size, count), dtype=np.uint64)
    for k, device in enumerate(devices.tolist()):
        words[k] = np.random.SeedSequence([seed, device, salt]).generate_state(count, np.uint64)
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / _TOP


def profile_uniforms(seed: int, devices: np.ndarray, num_quantities: int) -> np.ndarray:
    """The profile words of ``devices`` as uniforms (devices x quantities)."""
    return uniforms(seed, devices, seeds.SYSTEMS_PROFILE, num_quantities)


def draw_by_group(
    u: np.ndarray, group: np.ndarray, distributions: list[Distribution | None], missing: float
) -> np.ndarray:
    """Per device ``distributions[group[d]].quantile(u[d])`` (``missing`` where a group has none),
    vectorised per group."""
    values = np.full(u.shape, missing, dtype=np.float64)
    for g, dist in enumerate(distributions):
        if dist is None:
            continue
        mine = group == g
        if mine.any():
            values[mine] = dist.quantile(u[mine])
    return values
