"""Client-level DP accounting with ``dp-accounting``: the Poisson-sampled Gaussian mechanism.

One training round is ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))``: every device joins
with probability q, its update is clipped to L2 norm C and the server adds N(0, (sigma C)^2) to
the sum. R rounds are R self-compositions. ``epsilon`` reports (epsilon, delta) after the rounds
actually run; ``noise_for_epsilon`` solves for sigma before training.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import dp_accounting
from dp_accounting import pld, rdp

from fedrule.scenario.schema import FederatedConfig, PrivacyConfig

ACCOUNTANTS = ("rdp", "pld")


# dp-accounting's RDP accountant logs a warning for every order whose series does not converge
# (it then leaves that order out, which is safe); keep those out of a run's output
logging.getLogger("absl").setLevel(logging.ERROR)


def _accountant(kind: str) -> dp_accounting.PrivacyAccountant:
    if kind == "rdp":
        return rdp.RdpAccountant()
    if kind == "pld":
        return pld.PLDAccountant()
    raise ValueError(f"unknown accountant {kind!r}; expected one of {ACCOUNTANTS}")


def round_event(
    sampling_rate: float, noise_multiplier: float, rounds: int
) -> dp_accounting.DpEvent:
    """``rounds`` rounds of the Poisson-sampled Gaussian mechanism."""
    one = dp_accounting.PoissonSampledDpEvent(
        sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)
    )
    return dp_accounting.SelfComposedDpEvent(one, rounds)


@lru_cache(maxsize=4096)
def epsilon(
    sampling_rate: float, noise_multiplier: float, rounds: int, delta: float, kind: str = "rdp"
) -> float:
    """Epsilon after ``rounds`` rounds at ``delta`` (0 rounds: 0; no noise: infinity)."""
    if rounds == 0 or sampling_rate == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    accountant = _accountant(kind)
    accountant.compose(round_event(sampling_rate, noise_multiplier, rounds))
    return float(accountant.get_epsilon(delta))


@lru_cache(maxsize=256)
def noise_for_epsilon(
    target_epsilon: float, delta: float, sampling_rate: float, rounds: int, kind: str = "rdp"
) -> float:
    """The smallest noise multiplier sigma whose epsilon after ``rounds`` rounds is at most
    ``target_epsilon`` (dp-accounting's calibration, bisection on sigma)."""
    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(kind),
            lambda sigma: round_event(sampling_rate, sigma, rounds),
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(1e-3, 1e3),
            tol=1e-4,
        )
    )


@dataclass(frozen=True)
class DpPlan:
    """Central DP of a run: clipping norm C, noise multiplier sigma, sampling rate q, delta."""

    clip: float
    noise_multiplier: float
    sampling_rate: float
    delta: float
    expected_devices: float  # the fixed denominator: q x number of devices
    accountant: str = "rdp"

    @property
    def noise_std(self) -> float:
        """The standard deviation of the noise on every entry of the summed update."""
        return self.noise_multiplier * self.clip

    def epsilon(self, rounds: int) -> float:
        return epsilon(
            self.sampling_rate, self.noise_multiplier, rounds, self.delta, self.accountant
        )


def sampling_rate(devices_per_round: float, num_devices: int) -> float:
    """Poisson sampling rate q of ``federated.devices_per_round`` (a share <= 1, or a count)."""
    share = devices_per_round if devices_per_round <= 1 else devices_per_round / num_devices
    return min(1.0, float(share))


def plan_central_dp(
    privacy: PrivacyConfig, federated: FederatedConfig, num_devices: int
) -> DpPlan | None:
    """The run's central-DP plan from the ``privacy`` and ``federated`` scenario sections (None:
    no central DP). ``privacy.target_epsilon`` solves sigma for ``federated.rounds`` rounds."""
    if not privacy.central_dp:
        return None
    q = sampling_rate(federated.devices_per_round, num_devices)
    delta = privacy.delta or 1.0 / num_devices
    sigma = privacy.noise_multiplier
    if privacy.target_epsilon is not None:
        sigma = noise_for_epsilon(
            privacy.target_epsilon, delta, q, federated.rounds, privacy.accountant
        )
    return DpPlan(privacy.clip, sigma, q, delta, q * num_devices, privacy.accountant)


@lru_cache(maxsize=4096)
def local_epsilon(noise_multiplier: float, rounds: int, delta: float, kind: str = "rdp") -> float:
    """A device's own epsilon under local DP after it uploaded in ``rounds`` rounds: each upload
    is its update clipped to C plus N(0, (sigma C)^2) on every entry; two uploads differ by up to
    2C, so each is a Gaussian mechanism of noise multiplier sigma / 2, composed (no amplification
    by sampling: the server knows who uploaded)."""
    if rounds == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    accountant = _accountant(kind)
    event = dp_accounting.GaussianDpEvent(noise_multiplier / 2)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return float(accountant.get_epsilon(delta))
