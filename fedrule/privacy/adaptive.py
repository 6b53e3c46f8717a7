"""Adaptive clipping (Andrew et al., "Differentially Private Learning with Adaptive Clipping",
NeurIPS 2021): the clipping norm C follows a target quantile of the devices' update norms.

Every device also reports the bit b = [its update norm <= C]; only the sum over a cohort
travels, and the server adds N(0, sigma_b^2) to the round's total before dividing by the
expected number of devices m: b~ = (sum b + N(0, sigma_b^2)) / m. Then
C <- C exp(-lr (b~ - gamma)) (the geometric update). Releasing the bits costs privacy, so the
update's noise multiplier drops to sigma_delta = (sigma^-2 - (2 sigma_b)^-2)^(-1/2): the pair
(update, bits) is then exactly as private as one Gaussian mechanism of multiplier sigma, and the
accountant keeps sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedrule.errors import ConfigError
from fedrule.scenario.schema import PrivacyConfig

DEFAULT_COUNT_SHARE = 1 / 20  # the paper's sigma_b: the expected number of devices / 20


@dataclass(frozen=True)
class AdaptiveClip:
    """The adaptive clipping rule: initial C, target quantile gamma, step size, sigma_b, and the
    expected number of devices per round m (the denominator of the noised share)."""

    initial: float
    target_quantile: float
    lr: float
    count_stddev: float
    expected_devices: float

    def noised_share(self, below: int, rng: np.random.Generator) -> float:
        """b~: the share of the expected devices whose update norm was <= C, noised."""
        return (below + rng.normal(0.0, self.count_stddev)) / self.expected_devices

    def next_clip(self, clip: float, share: float) -> float:
        """C after a round whose noised share below C was ``share``."""
        return clip * math.exp(-self.lr * (share - self.target_quantile))


def plan_adaptive_clip(privacy: PrivacyConfig, expected_devices: float) -> AdaptiveClip | None:
    """The run's adaptive clipping rule (None: the clip stays ``privacy.clip``)."""
    if privacy.clip_quantile is None:
        return None
    stddev = privacy.clip_count_stddev or expected_devices * DEFAULT_COUNT_SHARE
    return AdaptiveClip(
        privacy.clip, privacy.clip_quantile, privacy.clip_lr, stddev, expected_devices
    )


def update_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """sigma_delta = (sigma^-2 - (2 sigma_b)^-2)^(-1/2): the update's share of a total noise
    multiplier sigma when the clipped-bit count is noised with sigma_b (its sensitivity is 1/2
    once the bits are centred on 1/2)."""
    rest = noise_multiplier**-2 - (2 * count_stddev) ** -2
    if rest <= 0:
        raise ConfigError(
            f"sigma_b = {count_stddev:.4g} leaves no noise for the update under sigma = "
            f"{noise_multiplier:.4g} (needs 2 sigma_b > sigma)",
            path="privacy.clip_count_stddev",
            hint="raise privacy.clip_count_stddev or lower the noise multiplier",
        )
    return rest**-0.5
