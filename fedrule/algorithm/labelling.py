"""Estimator labelling: sampled devices rank all items under a batch of candidate configurations
on their own validation item and return metric sums; the server averages them into labels (with
``search.tail_weight`` > 0 the request carries the head items, the sums hold head/tail metrics
too, and the labels mix overall and tail quality).

The same phase with the full configuration alone measures validation quality during training.
Under secure aggregation each device's sums arrive masked (fixed point) and the server unmasks
only each request's sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from fedrule import killpoints, seeds
from fedrule.algorithm.phase import Phase
from fedrule.metrics import ConfigSums
from fedrule.privacy import secagg
from fedrule.protocol import TEST, VALID, LabelReply, LabelRequest, Message, NodeFailure
from fedrule.search import customize

if TYPE_CHECKING:
    from fedrule.algorithm.server import FleetServer


def label_devices(seed: int, num_devices: int, wanted: int) -> np.ndarray:
    """The labelling devices: a seeded sample of ``wanted`` (0: every device)."""
    if wanted and wanted < num_devices:
        rng = seeds.server_rng(seed, seeds.LABEL_DEVICES)
        return np.sort(rng.choice(num_devices, size=wanted, replace=False))
    return np.arange(num_devices)


def verify_devices(
    seed: int, num_devices: int, wanted: int, held_out: bool = True, most: int = 0
) -> np.ndarray:
    """The devices that verify the searched configurations. ``held_out``: those that did not
    label, when they are at least as many as the labelling ones, so that the choice among
    candidates is measured on validation items neither the estimator nor the search has seen;
    else (or not ``held_out``) the labelling devices themselves. ``most`` (0: no limit): a
    seeded sample of at most this many of them."""
    labelling = label_devices(seed, num_devices, wanted)
    rest = np.setdiff1d(np.arange(num_devices), labelling)
    chosen = rest if held_out and rest.size >= labelling.size else labelling
    if most and chosen.size > most:
        rng = seeds.server_rng(seed, seeds.VERIFY_DEVICES)
        chosen = np.sort(rng.choice(chosen, size=most, replace=False))
    return chosen


class Labelling(Phase[tuple[ConfigSums, int]]):
    """Metric sums of ``configs`` over ``devices``' validation items (``target`` ``TEST``:
    their test items), and the failed nodes."""

    def __init__(
        self,
        configs: np.ndarray,
        devices: np.ndarray,
        stamp: int,
        what: str,
        item_is_head: np.ndarray | None = None,
        table: int = 0,
        target: str = VALID,
        as_dispatched: bool = False,
    ) -> None:
        self.configs, self.devices, self.stamp, self.what = configs, devices, stamp, what
        self.heads = np.zeros(0, bool) if item_is_head is None else item_is_head  # tail metrics
        self.table = table  # which of the server's tables (per-tier: the devices' tier's)
        self.target = target  # TEST: a measurement of the run (eval.every_device), not a label
        self.as_dispatched = as_dispatched  # devices refit per configuration, as on dispatch

    def configure(self, server: FleetServer) -> tuple[list[Message], list[np.ndarray]]:
        codec = server.tables.codecs[self.table]
        payload = server.tables.payload(server.table, self.table, codec.full_config())
        cohorts = server.transport.pack(self.devices)
        requests: list[Message] = [
            LabelRequest(
                stamp=self.stamp,
                devices=c,
                payloads=(payload,),
                configs=self.configs,
                item_is_head=self.heads,
                target=self.target,
                as_dispatched=self.as_dispatched,
            )
            for c in cohorts
        ]
        return requests, cohorts

    def aggregate(
        self,
        server: FleetServer,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> tuple[ConfigSums, int]:
        total = ConfigSums({}, {})
        failed = 0
        secure = secagg.params_of(server.scenario.privacy)
        self.dropped = 0  # devices that crashed or missed the deadline
        for cohort, reply in zip(cohorts, replies, strict=True):
            if isinstance(reply, NodeFailure):
                failed += 1
                self.dropped += int(cohort.size)
                continue
            out = cast(LabelReply, reply)
            self.dropped += out.dropped
            sums, counts = out.sums, out.counts
            if secure is not None:
                sums, counts = _unmask(out, len(self.configs), secure)
            total = total + ConfigSums.from_arrays(list(out.keys), sums, counts)
            killpoints.reached("labelling")
        if self.target == TEST:  # measured as the dispatched tables are tested: not noised
            return total, failed
        return server.dp.labels(total, self.stamp), failed  # noised: label_noise_multiplier


def _unmask(
    reply: LabelReply, num_configs: int, secure: secagg.SecAggParams
) -> tuple[np.ndarray, np.ndarray]:
    """The cohort's metric sums (configs x keys) and counts from its masked fixed-point
    vectors: only their sum is unmasked."""
    keys = len(reply.keys)
    length = num_configs * keys + keys
    upload = secagg.MaskedUpload.from_reply(reply)
    total = secagg.decode_fixed(secagg.unmask_sum(upload, length, secure))
    return total[: num_configs * keys].reshape(num_configs, keys), total[num_configs * keys :]


def candidate_configs(server: FleetServer) -> tuple[np.ndarray, np.ndarray]:
    """The labelling devices and the candidate configurations (seeded, the same every time)."""
    est = server.scenario.estimator
    devices = label_devices(server.seed, server.fleet.num_devices, est.label_users)
    rng = seeds.server_rng(server.seed, seeds.LABEL_DEVICES, 1)
    return devices, customize.sample_configs(server.codec, est.configs, rng)
