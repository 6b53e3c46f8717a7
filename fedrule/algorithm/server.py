"""The federated server, as one readable template over small phases.

``FleetServer.run`` = count popularity -> train for R rounds (round callbacks after each:
validation, best round, early stopping, round hooks) -> label configurations on devices and fit
the estimator -> search per distinct budget and dispatch -> collect per-device test results.

What differs between values of ``federated.method`` is the method object
(``fedrule.algorithm.methods``): its tables, who trains what, whether it labels and searches,
what devices receive. Every phase takes the run's fixed ``ServerContext`` and the current
``ServerState`` and returns what it changes; the template threads the state through them.

The server holds the item tables, the fleet's registration data (budget and tier per device) and
what devices send back; it never reads device data. It knows nothing of Flower: it talks to a
``Transport``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fedrule.algorithm.callbacks import round_callbacks, validation_key
from fedrule.algorithm.context import FleetRegistry, PhaseObserver, ServerContext
from fedrule.algorithm.count import PopularityCount
from fedrule.algorithm.coverage import BlockCoverage
from fedrule.algorithm.dispatch import (
    DispatchAndTest,
    measure_every_device,
    received,
    search_budgets,
)
from fedrule.algorithm.dp_state import ServerPrivacy
from fedrule.algorithm.hooks import RoundHook, RoundState
from fedrule.algorithm.labelling import label_and_fit
from fedrule.algorithm.methods import get_method
from fedrule.algorithm.server_step import ServerStep, make_server_step
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.training import TrainingRound
from fedrule.algorithm.transport import Transport
from fedrule.algorithm.verification import verified
from fedrule.events import Events
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import Scenario

__all__ = ["FleetRegistry", "FleetServer", "ServerResults"]


@dataclass
class ServerResults:
    rounds: list[dict] = field(default_factory=list)
    label_report: dict = field(default_factory=dict)
    searches: dict = field(default_factory=dict)
    devices: dict[str, np.ndarray] = field(default_factory=dict)
    metric_keys: list[str] = field(default_factory=list)
    layout: ElasticLayout | None = None
    popularity: np.ndarray | None = None
    table: np.ndarray | None = None
    table_offsets: np.ndarray | None = None  # where each of the stacked tables starts and ends
    item: np.ndarray | None = None  # the table as the model file stores it (method.item_array)
    estimator: Any = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    best_round: int = 0  # the validated round whose table was kept (0: the last round's)
    coverage: BlockCoverage | None = None  # training per (group, block) (elastic, no central DP)
    every_device: dict[int, dict[str, float]] = field(default_factory=dict)  # eval.every_device


class FleetServer:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        fleet: FleetRegistry,
        transport: Transport,
        events: Events,
        *,
        server_step: ServerStep | None = None,
        hooks: Sequence[RoundHook] = (),
        resume: RoundState | None = None,
        observers: Sequence[PhaseObserver] = (),
    ) -> None:
        fed = scenario.federated
        step = server_step or make_server_step(fed)
        dp = ServerPrivacy.of(scenario, seed, fleet.num_devices)
        self.ctx = ServerContext(
            scenario, seed, fleet, transport, events, dp, step, tuple(observers)
        )
        self.method = get_method(fed.method)
        self.callbacks = round_callbacks(hooks)
        self.resume = resume
        self.phase_seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ the template
    def run(self) -> ServerResults:
        method, scenario = self.method, self.ctx.scenario
        state = ServerState(table=np.zeros((0, 0), np.float32), clip=self.ctx.dp.clip)
        with self._timed("count"):
            ctx = self.ctx.counted(PopularityCount().run(self.ctx, state))
        ctx = ctx.with_tables(method.tables(ctx.codec, ctx.fleet, scenario.model, ctx.seed))
        state = self._initial_state(ctx)
        if method.trains:
            with self._timed("train"):
                state = self.train(ctx, state)
        if method.labels_and_searches:
            with self._timed("label"):
                state = label_and_fit(ctx, state)
        with self._timed("dispatch"):
            if method.labels_and_searches:
                state = self.search(ctx, state)
            assignment = method.dispatch_assignment(ctx, state)
            if not method.labels_and_searches:  # no search: what the method's devices receive
                found = received(ctx.tables, assignment, ctx.fleet.budget_bytes)
                state = replace(state, searches=found)
            devices, keys = DispatchAndTest(assignment).run(ctx, state)
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.phase_seconds.items())
        ctx.events.message(f"phase times: {times}")
        return ServerResults(
            rounds=list(state.history),
            label_report=state.label_report,
            searches=state.searches,
            devices=devices,
            metric_keys=keys,
            layout=ctx.codec,
            popularity=ctx.popularity,
            table=state.table,
            table_offsets=ctx.tables.offsets,
            item=method.item_array(state.table, ctx.tables),
            estimator=state.estimator,
            phase_seconds=self.phase_seconds,
            best_round=state.best.round,
            coverage=None if state.coverage is None else BlockCoverage(ctx.codec, state.coverage),
            every_device=state.every_device,
        )

    def _initial_state(self, ctx: ServerContext) -> ServerState:
        """The method's initial table; block coverage where the tables are elastic and
        trained, and no central DP hides the per-block weights."""
        method, scenario = self.method, ctx.scenario
        table = method.initial_table(ctx.tables, scenario.model, ctx.seed, ctx.popularity)
        covered = method.trains and method.elastic and not scenario.privacy.central_dp
        coverage = BlockCoverage(ctx.codec).weight if covered else None
        return ServerState(table=table, clip=ctx.dp.clip, coverage=coverage)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.phase_seconds[name] = time.perf_counter() - started

    # ------------------------------------------------------------------ phases
    def train(self, ctx: ServerContext, state: ServerState) -> ServerState:
        """Training rounds until the last or an early stop, from a checkpoint if resumed."""
        fed = ctx.scenario.federated
        ctx.events.phase("federated training", fed.rounds)
        if self.resume is not None:
            state = state.from_round_state(self.resume)
            state = replace(state, clip=ctx.dp.clip_after(state.history))
            ctx.events.message(f"resumed after round {state.round}")
            for _ in range(state.round):
                ctx.events.advance()
        state = replace(state, assignment=self.method.training_assignment(ctx, state))
        while state.round < fed.rounds and not state.stopped:
            state = self.train_round(ctx, state)
        ctx.events.end_phase()
        if state.coverage is not None:
            ctx.events.message(BlockCoverage(ctx.codec, state.coverage).summary())
        for callback in self.callbacks:
            state = callback.on_train_end(ctx, state)
        return state

    def train_round(self, ctx: ServerContext, state: ServerState) -> ServerState:
        """One round (after a refit of the estimator where the method asks for one), then the
        round callbacks."""
        started, round_number = time.perf_counter(), state.round + 1
        if self.method.refit_due(ctx.scenario, round_number):
            state = label_and_fit(ctx, state)  # budgeted devices then train what they receive
            state = replace(state, assignment=self.method.training_assignment(ctx, state))
        state = TrainingRound(round_number, state.assignment, started).run(ctx, state)
        for callback in self.callbacks:
            state = callback.on_round_end(ctx, state)
        record, key = state.record, validation_key(ctx)
        info = {"loss": record["loss"], "trained": record["trained"], "s": record["seconds"]}
        if not np.isnan(record[key]):
            info[key] = record[key]
        ctx.events.advance(info)
        return state

    def search(self, ctx: ServerContext, state: ServerState) -> ServerState:
        """Every distinct budget's configuration: searched, verified (``search.verify``), and
        tested on every device (``eval.every_device``)."""
        found = search_budgets(ctx, state)
        if ctx.scenario.search.verify:
            found, state = verified(ctx, state, found)
        every = measure_every_device(ctx, state, found) if ctx.scenario.eval.every_device else {}
        return replace(state, searches=found, every_device=every)
