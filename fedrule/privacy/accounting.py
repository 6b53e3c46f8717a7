"""Client-level DP accounting with ``dp-accounting``: the Poisson-sampled Gaussian mechanism.

One training round is ``PoissonSampledDpEvent(q, GaussianDpEvent(sigma))``: every device joins
with probability q, its update is clipped to L2 norm C and the server adds N(0, (sigma C)^2) to
the sum. R rounds are R self-compositions. ``epsilon`` reports (epsilon, delta) after the rounds
actually run; ``noise_for_epsilon`` solves for sigma before training.

With noise on the other device data (``privacy.count_noise_multiplier``,
``privacy.label_noise_multiplier``, ``fedrule.privacy.mechanisms``) a run is the composition
``ComposedDpEvent([count, R rounds, L labellings])``: the count is one
``GaussianDpEvent(sigma_count)`` over every device, each labelling or validation one
``GaussianDpEvent(sigma_label)`` over its (fixed, not sampled) devices. ``run_epsilon`` reports
that composition; adaptive clipping (``fedrule.privacy.adaptive``) keeps sigma as it is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import dp_accounting
from dp_accounting import pld, rdp

from fedrule.errors import ConfigError
from fedrule.names import ACCOUNTANTS
from fedrule.privacy.adaptive import plan_adaptive_clip, update_noise_multiplier
from fedrule.scenario.schema import FederatedConfig, PrivacyConfig

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


def run_event(
    sampling_rate: float,
    noise_multiplier: float,
    rounds: int,
    *,
    count_noise: float = 0.0,
    label_noise: float = 0.0,
    labellings: int = 0,
) -> dp_accounting.DpEvent:
    """The noised count (if any), ``rounds`` training rounds and ``labellings`` noised
    labellings (if any), composed."""
    events: list[dp_accounting.DpEvent] = []
    if count_noise > 0:
        events.append(dp_accounting.GaussianDpEvent(count_noise))
    if rounds > 0:
        events.append(round_event(sampling_rate, noise_multiplier, rounds))
    if label_noise > 0 and labellings > 0:
        label = dp_accounting.GaussianDpEvent(label_noise)
        events.append(dp_accounting.SelfComposedDpEvent(label, labellings))
    return dp_accounting.ComposedDpEvent(events)


@lru_cache(maxsize=4096)
def run_epsilon(
    sampling_rate: float,
    noise_multiplier: float,
    rounds: int,
    delta: float,
    kind: str = "rdp",
    *,
    count_noise: float = 0.0,
    label_noise: float = 0.0,
    labellings: int = 0,
) -> float:
    """Epsilon at ``delta`` of ``run_event`` (nothing released: 0; a round without noise:
    infinity)."""
    if rounds > 0 and sampling_rate > 0 and noise_multiplier <= 0:
        return math.inf
    event = run_event(
        sampling_rate if rounds else 0.0,
        noise_multiplier,
        rounds if sampling_rate > 0 else 0,
        count_noise=count_noise,
        label_noise=label_noise,
        labellings=labellings,
    )
    if not event.events:
        return 0.0
    accountant = _accountant(kind)
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


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
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    rounds: int,
    kind: str = "rdp",
    *,
    count_noise: float = 0.0,
    label_noise: float = 0.0,
    labellings: int = 0,
) -> float:
    """The smallest noise multiplier sigma whose epsilon after ``rounds`` rounds (composed with
    the noised count and ``labellings`` noised labellings, if any) is at most
    ``target_epsilon`` (dp-accounting's calibration, bisection on sigma)."""
    others = dict(count_noise=count_noise, label_noise=label_noise, labellings=labellings)
    spent = run_epsilon(sampling_rate, 1.0, 0, delta, kind, **others)
    if spent >= target_epsilon:
        raise ConfigError(
            f"the noised count and labels alone spend epsilon {spent:.3g}, no less than the "
            f"target {target_epsilon:g}",
            path="privacy.target_epsilon",
            hint="raise it, or raise privacy.count_noise_multiplier / label_noise_multiplier",
        )
    # PLD is tighter than RDP (its sigma is smaller) but discretises the privacy loss, which
    # takes memory without bound as sigma -> 0: search it near RDP's answer, never from 1e-3.
    low, high = 1e-3, 1e3
    if kind != "rdp":
        high = noise_for_epsilon(target_epsilon, delta, sampling_rate, rounds, "rdp", **others)
        low = high / 4
    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(kind),
            lambda sigma: run_event(sampling_rate, sigma, rounds, **others),
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
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
    count_noise_multiplier: float = 0.0  # 0: the popularity count is not noised nor counted
    label_noise_multiplier: float = 0.0  # 0: label sums are not noised nor counted
    clip_count_stddev: float = 0.0  # adaptive clipping's sigma_b (0: a fixed clip)

    @property
    def update_noise_multiplier(self) -> float:
        """sigma itself, or under adaptive clipping the update's share sigma_delta of it."""
        if self.clip_count_stddev <= 0:
            return self.noise_multiplier
        return update_noise_multiplier(self.noise_multiplier, self.clip_count_stddev)

    @property
    def noise_std(self) -> float:
        """The standard deviation of the noise on every entry of the summed update (at the
        initial clip; ``update_noise_std`` for a round's adaptive clip)."""
        return self.update_noise_std(self.clip)

    def update_noise_std(self, clip: float) -> float:
        return self.update_noise_multiplier * clip

    def epsilon(self, rounds: int, labellings: int = 0) -> float:
        """Epsilon after the count, ``rounds`` rounds and ``labellings`` labellings."""
        return run_epsilon(
            self.sampling_rate,
            self.noise_multiplier,
            rounds,
            self.delta,
            self.accountant,
            count_noise=self.count_noise_multiplier,
            label_noise=self.label_noise_multiplier,
            labellings=labellings,
        )


def sampling_rate(devices_per_round: float, num_devices: int) -> float:
    """Poisson sampling rate q of ``federated.devices_per_round`` (a share <= 1, or a count)."""
    share = devices_per_round if devices_per_round <= 1 else devices_per_round / num_devices
    return min(1.0, float(share))


def plan_central_dp(
    privacy: PrivacyConfig, federated: FederatedConfig, num_devices: int, *, verify: bool = False
) -> DpPlan | None:
    """The run's central-DP plan from the ``privacy`` and ``federated`` scenario sections (None:
    no central DP). ``privacy.target_epsilon`` solves sigma for ``federated.rounds`` rounds."""
    if not privacy.central_dp:
        return None
    q = sampling_rate(federated.devices_per_round, num_devices)
    delta = privacy.delta or 1.0 / num_devices
    sigma = privacy.noise_multiplier
    others = dict(
        count_noise=privacy.count_noise_multiplier, label_noise=privacy.label_noise_multiplier
    )
    if privacy.target_epsilon is not None:
        sigma = noise_for_epsilon(
            privacy.target_epsilon,
            delta,
            q,
            federated.rounds,
            privacy.accountant,
            labellings=planned_labellings(federated, verify=verify),
            **others,
        )
    adaptive = plan_adaptive_clip(privacy, q * num_devices)
    plan = DpPlan(
        privacy.clip,
        sigma,
        q,
        delta,
        q * num_devices,
        privacy.accountant,
        count_noise_multiplier=others["count_noise"],
        label_noise_multiplier=others["label_noise"],
        clip_count_stddev=0.0 if adaptive is None else adaptive.count_stddev,
    )
    if adaptive is not None:  # a sigma_b too small for sigma fails here, before training
        update_noise_multiplier(sigma, adaptive.count_stddev)
    return plan


def planned_labellings(federated: FederatedConfig, *, verify: bool = False) -> int:
    """How many labellings a run of ``federated.rounds`` rounds runs at most: one validation
    every ``eval_every`` rounds and after the last, a labelling before every budgeted refit,
    the final labelling and (``verify``: ``search.verify``) the verification of the searched
    configurations (early stopping only lowers it)."""
    rounds = range(1, federated.rounds + 1)
    every = federated.eval_every
    validations = sum(1 for r in rounds if every and (r % every == 0 or r == federated.rounds))
    refit = federated.mode == "budgeted" and federated.refit_every
    refits = sum(1 for r in rounds if refit and r > 1 and (r - 1) % federated.refit_every == 0)
    return 1 + validations + refits + int(verify)


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
