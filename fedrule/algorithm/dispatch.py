"""Search and dispatch: one search per distinct budget, then every device receives its encoded
sub-embedding, refuses it if it exceeds its budget, tests it and reports. (``nested`` and
``per-tier`` dispatch the uniform prefixes their devices trained: no search.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from fedrule import killpoints
from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.phase import Phase, payload_assignment
from fedrule.metrics import head_items
from fedrule.protocol import Message, NodeFailure, TestReply, TestRequest
from fedrule.search import customize
from fedrule.search.searchers import SearchResult

if TYPE_CHECKING:
    from fedrule.algorithm.server import FleetServer


def searched_assignment(found: dict[int, SearchResult], budget_bytes: np.ndarray) -> Assignment:
    """Every device receives its budget's searched configuration, cut from the one table."""
    budgets = sorted(found)
    config_of_device = np.searchsorted(budgets, budget_bytes)
    return Assignment.one_table([found[b].config for b in budgets], config_of_device)


def search_budgets(server: FleetServer) -> dict[int, SearchResult]:
    """The searched configuration of every distinct budget of the fleet (retrain-free; budgets
    in increasing order, each warm-started with the smaller ones' results)."""
    return customize.search_all(
        server.codec,
        server.fleet.budget_bytes,
        server.results.estimator,
        server.scenario.search,
        server.seed,
    )


class DispatchAndTest(Phase[dict[str, np.ndarray]]):
    what = "dispatch"

    def __init__(self, assignment: Assignment) -> None:
        self.assignment = assignment

    def configure(self, server: FleetServer) -> tuple[list[Message], list[np.ndarray]]:
        assignment = self.assignment
        payloads = assignment.payloads(server.tables, server.table)
        head = head_items(server.popularity, server.scenario.eval.head_share)
        cohorts = server.transport.pack(np.arange(server.fleet.num_devices))
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
        server.events.phase("dispatch and test on every device", len(requests))
        return requests, cohorts

    def aggregate(
        self,
        server: FleetServer,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> dict[str, np.ndarray]:
        num = server.fleet.num_devices
        table = {
            "accepted": np.zeros(num, dtype=bool),
            "answered": np.zeros(num, dtype=bool),
            "bytes_received": np.zeros(num, dtype=np.int64),
            "evaluated": np.zeros(num, dtype=bool),
        }
        metrics = None
        dropped = 0
        for cohort, reply in zip(cohorts, replies, strict=True):
            server.events.advance()
            if isinstance(reply, NodeFailure):
                dropped += int(cohort.size)
                continue
            out = cast(TestReply, reply)
            dropped += out.dropped
            server.results.metric_keys = list(out.keys)
            if metrics is None:
                metrics = np.full((num, len(out.keys)), np.nan)
            devices = out.devices.astype(np.int64)
            table["answered"][devices] = True
            table["accepted"][devices] = out.accepted
            table["bytes_received"][devices] = out.bytes_received
            table["evaluated"][devices] = out.evaluated
            metrics[devices] = out.metrics
            killpoints.reached("dispatch")
        server.events.end_phase()
        if dropped:
            server.events.message(f"dispatch: {dropped} device(s) sent no test report")
        table["metrics"] = metrics if metrics is not None else np.zeros((num, 0))
        return table
