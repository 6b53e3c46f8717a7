"""Search and dispatch: one search per distinct budget (methods that search), then every device
receives its encoded payload, refuses it if it exceeds its budget, tests it and reports.
(Methods that do not search dispatch their ``dispatch_assignment``: ``received`` says what each
budget's devices get.) ``measure_every_device`` tests every budget's configuration on every
device (``eval.every_device``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from fedrule import killpoints
from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.labelling import Labelling
from fedrule.algorithm.phase import Phase, payload_assignment
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables
from fedrule.metrics import head_items
from fedrule.protocol import TEST, Message, NodeFailure, TestReply, TestRequest
from fedrule.search import customize
from fedrule.search.searchers import SearchResult


def searched_assignment(found: dict[int, SearchResult], budget_bytes: np.ndarray) -> Assignment:
    """Every device receives its budget's searched configuration, cut from the one table."""
    budgets = sorted(found)
    config_of_device = np.searchsorted(budgets, budget_bytes)
    return Assignment.one_table([found[b].config for b in budgets], config_of_device)


def search_budgets(ctx: ServerContext, state: ServerState) -> dict[int, SearchResult]:
    """The searched configuration of every distinct budget of the fleet (retrain-free; budgets
    in increasing order, each warm-started with the smaller ones' results)."""
    return customize.search_all(
        ctx.codec, ctx.fleet.budget_bytes, state.estimator, ctx.scenario.search, ctx.seed
    )


def received(
    tables: ServerTables, assignment: Assignment, budget_bytes: np.ndarray
) -> dict[int, SearchResult]:
    """Per distinct budget, what its devices receive (no search, no prediction)."""
    out: dict[int, SearchResult] = {}
    for budget in np.unique(budget_bytes):
        first = int(np.flatnonzero(budget_bytes == budget)[0])
        index = int(assignment.config_of_device[first])
        config = assignment.configs[index]
        codec = tables.codecs[int(assignment.table_of_config[index])]
        out[int(budget)] = SearchResult(
            config, codec.memory_bytes(config), float("nan"), 0, 0.0, searcher="no search"
        )
    return out


def measure_every_device(
    ctx: ServerContext, state: ServerState, found: dict[int, SearchResult]
) -> dict[int, dict[str, float]]:
    """``eval.every_device``: every budget's configuration tested on every device as if
    dispatched to it (with the user vector the device holds, refitted to the configuration
    under ``federated.personalize_epochs``), as centralised RULE is tested on every user.
    The devices return metric sums over the cohort, not per-device rows."""
    budgets = sorted(found)
    configs = np.stack([np.asarray(found[b].config, dtype=bool) for b in budgets])
    devices = np.arange(ctx.fleet.num_devices)
    heads = head_items(ctx.popularity, ctx.scenario.eval.head_share)
    ctx.events.message(
        f"testing {len(budgets)} budgets' configurations on every device (eval.every_device)"
    )
    what = "test on every device"
    phase = Labelling(configs, devices, 0, what, heads, target=TEST, as_dispatched=True)
    sums = phase.run(ctx, state).sums  # stamp 0: the dispatched test's random streams
    if not sums.sums:
        return {}
    means = sums.means()
    return {b: {k: float(v[c]) for k, v in means.items()} for c, b in enumerate(budgets)}


class DispatchAndTest(Phase[tuple[dict[str, np.ndarray], list[str]]]):
    """Per device (fleet order) whether it answered and accepted, the bytes it received,
    whether it was evaluated, and its test metrics; and the metrics' names."""

    what = "dispatch"

    def __init__(self, assignment: Assignment) -> None:
        self.assignment = assignment

    def configure(
        self, ctx: ServerContext, state: ServerState
    ) -> tuple[list[Message], list[np.ndarray]]:
        assignment = self.assignment
        payloads = assignment.payloads(ctx.tables, state.table)
        head = head_items(ctx.popularity, ctx.scenario.eval.head_share)
        cohorts = ctx.transport.pack(np.arange(ctx.fleet.num_devices))
        requests: list[Message] = []
        for cohort in cohorts:
            used, local = payload_assignment(cohort, assignment.config_of_device)
            requests.append(
                TestRequest(
                    devices=cohort,
                    payloads=tuple(payloads[i] for i in used),
                    payload_of_device=local,
                    item_is_head=head,
                )
            )
        ctx.events.phase("dispatch and test on every device", len(requests))
        return requests, cohorts

    def aggregate(
        self,
        ctx: ServerContext,
        state: ServerState,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        num = ctx.fleet.num_devices
        table = {
            "accepted": np.zeros(num, dtype=bool),
            "answered": np.zeros(num, dtype=bool),
            "bytes_received": np.zeros(num, dtype=np.int64),
            "evaluated": np.zeros(num, dtype=bool),
        }
        metrics = None
        keys: list[str] = []
        dropped = 0
        for cohort, reply in zip(cohorts, replies, strict=True):
            ctx.events.advance()
            if isinstance(reply, NodeFailure):
                dropped += int(cohort.size)
                continue
            out = cast(TestReply, reply)
            dropped += out.dropped
            keys = list(out.keys)
            if metrics is None:
                metrics = np.full((num, len(out.keys)), np.nan)
            devices = out.devices.astype(np.int64)
            table["answered"][devices] = True
            table["accepted"][devices] = out.accepted
            table["bytes_received"][devices] = out.bytes_received
            table["evaluated"][devices] = out.evaluated
            metrics[devices] = out.metrics
            killpoints.reached("dispatch")
        ctx.events.end_phase()
        if dropped:
            ctx.events.message(f"dispatch: {dropped} device(s) sent no test report")
        table["metrics"] = metrics if metrics is not None else np.zeros((num, 0))
        return table, keys
