"""The server's differential-privacy mechanisms across phases: the central-DP plan, adaptive
clipping (the clipping norm of the next round is ``ServerState.clip``: each round's passes
through ``after_round``), the noise on the popularity count and on label sums, and the epsilon
spent so far.

Every noise draw is a seeded server stream (``fedrule.seeds``): the count's, each round's
clipped-bit noise and each labelling's (by its stamp), so a DP run is reproducible from its seed
and independent of packing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule import seeds
from fedrule.metrics import ConfigSums
from fedrule.privacy import mechanisms
from fedrule.privacy.accounting import DpPlan, plan_central_dp, sampling_rate
from fedrule.privacy.adaptive import AdaptiveClip, plan_adaptive_clip
from fedrule.scenario.schema import Scenario


@dataclass
class ServerPrivacy:
    """What the server knows of DP: ``plan`` (None: no central DP), ``adaptive`` (None: the
    clip stays ``privacy.clip``) and the first round's clip."""

    seed: int
    plan: DpPlan | None
    adaptive: AdaptiveClip | None
    clip: float
    count_max_items: int = 0

    @staticmethod
    def of(scenario: Scenario, seed: int, num_devices: int) -> ServerPrivacy:
        privacy = scenario.privacy
        plan = plan_central_dp(
            privacy, scenario.federated, num_devices, verify=scenario.search.verify
        )
        expected = sampling_rate(scenario.federated.devices_per_round, num_devices) * num_devices
        adaptive = plan_adaptive_clip(privacy, expected)
        return ServerPrivacy(seed, plan, adaptive, privacy.clip, privacy.count_max_items)

    # ------------------------------------------------------------------ training rounds
    def request_clip(self, clip: float) -> float:
        """The clip a train request carries (0: devices clip at ``privacy.clip`` as set), of a
        round whose clipping norm is ``clip``."""
        return clip if self.adaptive is not None else 0.0

    def update_noise_std(self, clip: float) -> float:
        """The noise on every entry of a round's summed update (sigma_delta times C)."""
        return 0.0 if self.plan is None else self.plan.update_noise_std(clip)

    def after_round(self, round_number: int, below: int, clip: float) -> tuple[dict, float]:
        """Adaptive clipping after a round of clipping norm ``clip`` whose devices reported
        ``below`` bits in all: the round's clip and noised share below it (rounds-seed*.csv
        columns), and the next round's clip."""
        if self.adaptive is None:
            return {}, clip
        rng = seeds.server_rng(self.seed, seeds.CLIP_NOISE, round_number)
        share = self.adaptive.noised_share(below, rng)
        return {"clip": clip, "clip_below": share}, self.adaptive.next_clip(clip, share)

    def clip_after(self, history: list[dict] | tuple[dict, ...]) -> float:
        """The clip after the last recorded round (resuming from a checkpoint)."""
        if self.adaptive is not None and history:
            last = history[-1]
            return self.adaptive.next_clip(float(last["clip"]), float(last["clip_below"]))
        return self.clip

    # ------------------------------------------------------------------ other device data
    def count(self, total: np.ndarray) -> np.ndarray:
        """The popularity count, noised when ``privacy.count_noise_multiplier`` > 0."""
        if self.plan is None or self.plan.count_noise_multiplier <= 0:
            return total
        rng = seeds.server_rng(self.seed, seeds.COUNT_NOISE)
        multiplier = self.plan.count_noise_multiplier
        return mechanisms.noised_count(total, multiplier, self.count_max_items, rng)

    def labels(self, sums: ConfigSums, stamp: int) -> ConfigSums:
        """A labelling's sums, noised when ``privacy.label_noise_multiplier`` > 0."""
        if self.plan is None or self.plan.label_noise_multiplier <= 0:
            return sums
        rng = seeds.server_rng(self.seed, seeds.LABEL_NOISE, stamp)
        return mechanisms.noised_labels(sums, self.plan.label_noise_multiplier, rng)

    # ------------------------------------------------------------------ accounting
    def spent(self, rounds: int, labellings: int) -> dict[str, float]:
        """The ``epsilon`` column: the count, ``rounds`` rounds and ``labellings`` labellings
        (empty without central DP)."""
        if self.plan is None:
            return {}
        return {"epsilon": self.plan.epsilon(rounds, labellings)}
