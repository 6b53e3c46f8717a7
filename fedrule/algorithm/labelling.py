"""Estimator labelling: sampled devices rank all items under a batch of candidate configurations
on their own validation item and return metric sums; the server averages them into labels (with
``search.tail_weight`` > 0 the request carries the head items, the sums hold head/tail metrics
too, and the labels mix overall and tail quality).

The same phase measures validation quality during training (``fedrule.algorithm.callbacks``)
and verifies the searched configurations (``fedrule.algorithm.verification``). Under secure
aggregation each device's sums arrive masked (fixed point) and the server unmasks only each
request's sum. ``label`` runs one labelling and counts it in the server's state;
``label_and_fit`` labels the candidate configurations and fits the estimator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

import numpy as np

from fedrule import killpoints, seeds
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.phase import Phase
from fedrule.algorithm.state import ServerState
from fedrule.errors import FedruleError
from fedrule.metrics import ConfigSums, head_items
from fedrule.privacy import secagg
from fedrule.protocol import TEST, VALID, LabelReply, LabelRequest, Message, NodeFailure
from fedrule.search import customize
from fedrule.search.labels import objective_labels


@dataclass(frozen=True)
class Labels:
    """What a labelling returns: metric sums per configuration, the nodes that failed and the
    devices that sent nothing (crashed or missed the deadline)."""

    sums: ConfigSums
    failed_nodes: int = 0
    dropped_devices: int = 0


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


class Labelling(Phase[Labels]):
    """Metric sums of ``configs`` over ``devices``' validation items (``target`` ``TEST``:
    their test items)."""

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

    def configure(
        self, ctx: ServerContext, state: ServerState
    ) -> tuple[list[Message], list[np.ndarray]]:
        codec = ctx.tables.codecs[self.table]
        payload = ctx.tables.payload(state.table, self.table, codec.full_config())
        cohorts = ctx.transport.pack(self.devices)
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
        ctx: ServerContext,
        state: ServerState,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> Labels:
        total = ConfigSums({}, {})
        failed = dropped = 0
        secure = secagg.params_of(ctx.scenario.privacy)
        for cohort, reply in zip(cohorts, replies, strict=True):
            if isinstance(reply, NodeFailure):
                failed += 1
                dropped += int(cohort.size)
                continue
            out = cast(LabelReply, reply)
            dropped += out.dropped
            sums, counts = out.sums, out.counts
            if secure is not None:
                sums, counts = _unmask(out, len(self.configs), secure)
            total = total + ConfigSums.from_arrays(list(out.keys), sums, counts)
            killpoints.reached("labelling")
        if self.target != TEST:  # a measurement as the dispatched tables are tested: not noised
            total = ctx.dp.labels(total, self.stamp)  # noised: label_noise_multiplier
        return Labels(total, failed, dropped)


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


def label(
    ctx: ServerContext,
    state: ServerState,
    configs: np.ndarray,
    devices: np.ndarray,
    what: str,
    item_is_head: np.ndarray | None = None,
    table: int = 0,
    as_dispatched: bool = False,
    release: bool = True,
) -> tuple[Labels, ServerState]:
    """One labelling, and the state that counts it (a fresh stamp: a fresh random stream).
    ``release=False``: part of a step whose other labellings, of disjoint devices, count its
    release (parallel composition)."""
    state = state.labelling(release)
    phase = Labelling(
        configs, devices, state.label_stamp, what, item_is_head, table, as_dispatched=as_dispatched
    )
    return phase.run(ctx, state), state


def candidate_configs(ctx: ServerContext) -> tuple[np.ndarray, np.ndarray]:
    """The labelling devices and the candidate configurations (seeded, the same every time)."""
    est = ctx.scenario.estimator
    devices = label_devices(ctx.seed, ctx.fleet.num_devices, est.label_users)
    rng = seeds.server_rng(ctx.seed, seeds.LABEL_DEVICES, 1)
    return devices, customize.sample_configs(ctx.codec, est.configs, rng)


def tail_heads(ctx: ServerContext) -> np.ndarray | None:
    """The head items a labelling request carries (None without ``search.tail_weight``)."""
    if not ctx.scenario.search.tail_weight:
        return None
    return head_items(ctx.popularity, ctx.scenario.eval.head_share)


def label_and_fit(ctx: ServerContext, state: ServerState) -> ServerState:
    """Label the candidate configurations on the labelling devices and fit the estimator."""
    devices, configs = candidate_configs(ctx)
    ctx.events.message(
        f"labelling {len(configs)} configurations on {devices.size} devices' validation items"
    )
    labels, state = label(ctx, state, configs, devices, "labelling", tail_heads(ctx))
    if not labels.sums.sums:
        raise FedruleError("no device returned configuration labels")
    scenario = ctx.scenario
    objective = objective_labels(labels.sums, scenario.eval.metric, scenario.search.tail_weight)
    estimator, report = customize.fit(
        ctx.codec, configs, objective, ctx.popularity, scenario.estimator, ctx.seed
    )
    report["devices"] = int(devices.size)
    report["failed_nodes"] = labels.failed_nodes
    report["dropped_devices"] = labels.dropped_devices
    report.update(ctx.dp.spent(len(state.history), state.label_releases))  # so far
    ctx.events.message(
        f"estimator: held-out Spearman {report['holdout_spearman']:.3f} "
        f"on {len(configs)} configurations labelled by {devices.size} devices"
    )
    return replace(state, estimator=estimator, label_report=report)
