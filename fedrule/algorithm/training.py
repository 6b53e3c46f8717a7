"""A training round: sample devices, send each cohort the blocks its devices may train,
aggregate their update sums row- and block-wise, take the server step.

Who trains what is the round's ``Assignment``, the method's ``training_assignment``
(``fedrule.algorithm.methods``). The round takes the server's state and returns the next one:
the new table, the server step's and the clip's state, the coverage, and the round's record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import numpy as np

from fedrule import seeds
from fedrule.algorithm.aggregation import (
    DivergedError,
    PrivateAggregator,
    RowBlockAggregator,
)
from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.coverage import BlockCoverage
from fedrule.algorithm.phase import Phase, payload_assignment
from fedrule.algorithm.state import ServerState
from fedrule.errors import FedruleError
from fedrule.privacy.accounting import local_epsilon, sampling_rate
from fedrule.protocol import Message, NodeFailure, TrainReply, TrainRequest


def sample_round(
    seed: int, round_number: int, num_devices: int, share: float, *, poisson: bool = False
) -> np.ndarray:
    """The devices sampled in a round (a share of the fleet <= 1, or a count). ``poisson``: each
    device joins independently with probability share (or count / fleet size), as DP's
    amplification by sampling assumes; the round's size then varies."""
    rng = seeds.server_rng(seed, seeds.ROUND_SAMPLE, round_number)
    if poisson:
        return np.flatnonzero(rng.random(num_devices) < sampling_rate(share, num_devices))
    count = math.ceil(share * num_devices) if share <= 1 else int(share)
    return np.sort(rng.choice(num_devices, size=min(count, num_devices), replace=False))


def make_aggregator(
    ctx: ServerContext, state: ServerState, assignment: Assignment, round_number: int
) -> RowBlockAggregator:
    """Row/block FedAvg, or with central DP the noised sum over a fixed denominator, noised on
    every entry that the round's configurations offer to some device."""
    tables = ctx.tables
    shape = (*state.table.shape, tables.num_blocks)
    plan = ctx.dp.plan
    if plan is None:
        return RowBlockAggregator(*shape)
    offered = np.zeros((shape[0], shape[2]), dtype=bool)
    for config, table in zip(assignment.configs, assignment.table_of_config, strict=True):
        rows = slice(tables.offsets[table], tables.offsets[table + 1])
        offered[rows] |= ctx.codec.item_weights(config).numpy() > 0  # elastic tables only
    return PrivateAggregator(
        *shape,
        denominator=plan.expected_devices,
        noise_std=ctx.dp.update_noise_std(state.clip),
        offered=offered,
        rng=seeds.server_rng(ctx.seed, seeds.DP_NOISE, round_number),
    )


class TrainingRound(Phase[ServerState]):
    def __init__(self, round_number: int, assignment: Assignment, started: float | None = None):
        self.round = round_number
        self.assignment = assignment
        self.what = f"training round {round_number}"
        self.started = time.perf_counter() if started is None else started

    def configure(
        self, ctx: ServerContext, state: ServerState
    ) -> tuple[list[Message], list[np.ndarray]]:
        fed = ctx.scenario.federated
        self.chosen = sample_round(
            ctx.seed,
            self.round,
            ctx.fleet.num_devices,
            fed.devices_per_round,
            poisson=ctx.scenario.privacy.central_dp,
        )
        assignment = self.assignment
        payloads = assignment.payloads(ctx.tables, state.table)
        cohorts = ctx.transport.pack(self.chosen)
        # a cohort's reply sums its devices' updates per item: one table per cohort
        cohorts, self.cohort_table = assignment.split(cohorts)
        requests: list[Message] = []
        for cohort in cohorts:
            used, local = payload_assignment(cohort, assignment.config_of_device)
            requests.append(
                TrainRequest(
                    round=self.round,
                    devices=cohort,
                    payloads=tuple(payloads[i] for i in used),
                    payload_of_device=local,
                    clip=ctx.dp.request_clip(state.clip),
                )
            )
        return requests, cohorts

    def aggregate(
        self,
        ctx: ServerContext,
        state: ServerState,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> ServerState:
        aggregator = make_aggregator(ctx, state, self.assignment, self.round)
        counts = {"trained": 0, "unavailable": 0, "failed": 0, "late": 0, "lost_messages": 0}
        bytes_down = bytes_up = below = 0
        loss_sum = loss_count = 0.0
        offsets = ctx.tables.offsets[self.cohort_table]  # the rows of each cohort's table
        for cohort, reply, offset in zip(cohorts, replies, offsets, strict=True):
            if isinstance(reply, NodeFailure):
                counts["failed"] += int(cohort.size)  # the node raised, never answered, was lost
                counts["lost_messages"] += int(reply.lost)
                continue
            out = cast(TrainReply, reply)
            aggregator.add(out.rows + offset, out.sum_wdelta, out.sum_w)
            counts["trained"] += out.trained
            counts["unavailable"] += out.unavailable
            counts["failed"] += out.failed
            counts["late"] += out.late
            bytes_down += out.bytes_down
            bytes_up += out.bytes_up
            loss_sum += out.loss_sum
            loss_count += out.loss_count
            below += out.clip_below
        coverage = state.coverage
        if coverage is not None:
            covered = BlockCoverage(ctx.codec, coverage)
            covered.add(aggregator.sum_w, ctx.tables.offsets)
            coverage = covered.weight
        step = ctx.server_step
        step.load_state_dict(state.server_step)
        try:
            table = step.apply(state.table, aggregator)
        except DivergedError:
            raise FedruleError(
                f"training diverged in round {self.round} (the item table is not finite)",
                path="federated.local_lr",
                hint="lower the learning rate",
            ) from None
        privacy, clip = ctx.dp.after_round(self.round, below, state.clip)
        privacy.update(ctx.dp.spent(self.round, state.label_releases))
        local = ctx.scenario.privacy.local_noise_multiplier
        if local > 0:
            delta = ctx.scenario.privacy.delta or 1.0 / ctx.fleet.num_devices
            privacy["local_epsilon"] = local_epsilon(local, self.round, delta)
        record = {
            "round": self.round,
            "loss": loss_sum / loss_count if loss_count else float("nan"),
            "sampled": int(self.chosen.size),
            **counts,
            "bytes_down": bytes_down,
            "bytes_up": bytes_up,
            "seconds": time.perf_counter() - self.started,
            **privacy,
        }
        return replace(
            state,
            table=table,
            round=self.round,
            server_step=step.state_dict(),
            clip=clip,
            coverage=coverage,
            history=(*state.history, record),
        )
