"""A supernet training round: sample devices, send each cohort the blocks its devices may train,
aggregate their update sums row- and block-wise, take the server step.

Full mode: every device receives the full table. Budgeted mode: the estimator's choice for the
device's budget once an estimator exists, else the largest uniform configuration that fits.
``federated.method`` nested and per-tier: the device's largest uniform prefix, of its table;
full-prefix: the full table; hashing and qr: its tier's compressed table
(``fedrule.algorithm.assignment``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from fedrule import seeds
from fedrule.algorithm.aggregation import (
    DivergedError,
    PrivateAggregator,
    RowBlockAggregator,
)
from fedrule.algorithm.assignment import Assignment, per_tier_tables, uniform_prefixes
from fedrule.algorithm.phase import Phase, payload_assignment
from fedrule.algorithm.tables import COMPRESSED
from fedrule.errors import FedruleError
from fedrule.privacy.accounting import DpPlan, local_epsilon, sampling_rate
from fedrule.protocol import Message, NodeFailure, TrainReply, TrainRequest
from fedrule.search import customize

if TYPE_CHECKING:
    from fedrule.algorithm.server import FleetServer


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


def central_dp(server: FleetServer) -> DpPlan | None:
    """The run's central-DP plan (None: no central DP)."""
    return server.dp.plan


def make_aggregator(
    server: FleetServer, assignment: Assignment, round_number: int
) -> RowBlockAggregator:
    """Row/block FedAvg, or with central DP the noised sum over a fixed denominator, noised on
    every entry that the round's configurations offer to some device."""
    tables = server.tables
    shape = (*server.table.shape, tables.num_blocks)
    plan = central_dp(server)
    if plan is None:
        return RowBlockAggregator(*shape)
    offered = np.zeros((shape[0], shape[2]), dtype=bool)
    for config, table in zip(assignment.configs, assignment.table_of_config, strict=True):
        rows = slice(tables.offsets[table], tables.offsets[table + 1])
        offered[rows] |= server.codec.item_weights(config).numpy() > 0  # elastic tables only
    return PrivateAggregator(
        *shape,
        denominator=plan.expected_devices,
        noise_std=server.dp.update_noise_std(),
        offered=offered,
        rng=seeds.server_rng(server.seed, seeds.DP_NOISE, round_number),
    )


def training_configs(server: FleetServer) -> Assignment:
    """Distinct configurations devices receive and train (and their tables), and per device
    which."""
    fleet, codec = server.fleet, server.codec
    method = server.scenario.federated.method
    if method in COMPRESSED:
        return per_tier_tables(fleet.tier)
    if method in ("nested", "per-tier"):
        return uniform_prefixes(codec, fleet.budget_bytes, fleet.tier, method == "per-tier")
    if method == "full-prefix" or server.scenario.federated.mode == "full":
        return Assignment.one_table([codec.full_config()], np.zeros(fleet.num_devices, np.int64))
    budgets, index = np.unique(fleet.budget_bytes, return_inverse=True)
    if server.results.estimator is None:
        how, popularity = server.scenario.federated.start_config, server.popularity
        configs = [customize.start_config(codec, int(b), popularity, how) for b in budgets]
    else:  # increasing budgets, each warm-started with the smaller ones' results
        found = customize.search_all(
            codec, budgets, server.results.estimator, server.scenario.search, server.seed
        )
        configs = [found[int(budget)].config for budget in budgets]
    return Assignment.one_table(configs, index.astype(np.int64))


class TrainingRound(Phase[dict]):
    def __init__(self, round_number: int, assignment: Assignment):
        self.round = round_number
        self.assignment = assignment
        self.what = f"training round {round_number}"
        self.started = time.perf_counter()

    def configure(self, server: FleetServer) -> tuple[list[Message], list[np.ndarray]]:
        fed = server.scenario.federated
        self.chosen = sample_round(
            server.seed,
            self.round,
            server.fleet.num_devices,
            fed.devices_per_round,
            poisson=server.scenario.privacy.central_dp,
        )
        assignment = self.assignment
        payloads = assignment.payloads(server.tables, server.table)
        cohorts = server.transport.pack(self.chosen)
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
                    clip=server.dp.request_clip(),
                )
            )
        return requests, cohorts

    def aggregate(
        self,
        server: FleetServer,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> dict:
        aggregator = make_aggregator(server, self.assignment, self.round)
        counts = {"trained": 0, "unavailable": 0, "failed": 0, "late": 0, "lost_messages": 0}
        bytes_down = bytes_up = below = 0
        loss_sum = loss_count = 0.0
        offsets = server.tables.offsets[self.cohort_table]  # the rows of each cohort's table
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
        if server.coverage is not None:
            server.coverage.add(aggregator.sum_w, server.tables.offsets)
        try:
            server.table = server.server_step.apply(server.table, aggregator)
        except DivergedError:
            raise FedruleError(
                f"training diverged in round {self.round} (the item table is not finite)",
                path="federated.local_lr",
                hint="lower the learning rate",
            ) from None
        privacy = {**server.dp.after_round(self.round, below)}
        privacy.update(server.dp.spent(self.round, server.label_releases))
        local = server.scenario.privacy.local_noise_multiplier
        if local > 0:
            delta = server.scenario.privacy.delta or 1.0 / server.fleet.num_devices
            privacy["local_epsilon"] = local_epsilon(local, self.round, delta)
        return {
            "round": self.round,
            "loss": loss_sum / loss_count if loss_count else float("nan"),
            "sampled": int(self.chosen.size),
            **counts,
            "bytes_down": bytes_down,
            "bytes_up": bytes_up,
            "seconds": time.perf_counter() - self.started,
            **privacy,
        }
