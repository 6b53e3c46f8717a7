"""The federated server, as one readable template over small phases.

``FleetServer.run`` = count popularity -> train the supernet for R rounds (round hooks after
each) -> label configurations on devices and fit the estimator -> search per distinct budget and
dispatch -> collect per-device test results.

The baselines of ``federated.method`` skip labelling and search (``fedrule.algorithm.assignment``
says who trains and receives what): nested and per-tier devices train and receive uniform
prefixes of one table or of their tier's; full-prefix devices train the full table and receive
the largest uniform prefix that fits; hashing and qr devices train and receive their tier's
compressed table; popularity devices receive the counted ranking, with no training at all.

The server holds the item table, the fleet's registration data (budget and tier per device) and
what devices send back; it never reads device data. It knows nothing of Flower: it talks to a
``Transport``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedrule.algorithm.assignment import Assignment, uniform_prefixes
from fedrule.algorithm.count import PopularityCount
from fedrule.algorithm.coverage import BlockCoverage
from fedrule.algorithm.dispatch import DispatchAndTest, search_budgets, searched_assignment
from fedrule.algorithm.dp_state import ServerPrivacy
from fedrule.algorithm.hooks import RoundHook, RoundState
from fedrule.algorithm.labelling import (
    Labelling,
    candidate_configs,
    label_devices,
    verify_devices,
)
from fedrule.algorithm.server_step import ServerStep, make_server_step
from fedrule.algorithm.tables import (
    COMPRESSED,
    ServerTables,
    compressed_tables,
    elastic_tables,
    initial_table,
    popularity_tables,
    tier_budgets,
)
from fedrule.algorithm.training import TrainingRound, training_configs
from fedrule.algorithm.transport import Transport
from fedrule.errors import FedruleError
from fedrule.events import Events
from fedrule.metrics import ConfigSums, head_items
from fedrule.model.codec import elastic_codec
from fedrule.model.codecs.dense import SINGLE_CONFIG
from fedrule.model.elastic import ElasticLayout
from fedrule.protocol import TEST, Message, NodeFailure
from fedrule.scenario.schema import Scenario
from fedrule.search import customize, verify
from fedrule.search.base import SearchResult
from fedrule.search.estimator import PerformanceEstimator
from fedrule.search.labels import objective_labels


@dataclass(frozen=True, eq=False)
class FleetRegistry:
    """What the server legitimately knows of the fleet: its size, and each device's budget and
    tier (devices register them), plus the catalogue size."""

    n_items: int
    budget_bytes: np.ndarray
    tier: np.ndarray
    tier_names: tuple[str, ...]

    @property
    def num_devices(self) -> int:
        return int(self.budget_bytes.size)


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
    estimator: Any = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    best_round: int = 0  # the validated round whose table was kept (0: the last round's)
    coverage: BlockCoverage | None = None  # training per (group, block) (elastic, no central DP)
    every_device: dict[int, dict[str, float]] = field(default_factory=dict)  # eval.every_device


@dataclass
class _Best:
    """The best validated round so far, and validations since it."""

    round: int = 0
    value: float = float("-inf")
    table: np.ndarray | None = None
    stale: int = 0

    def see(self, round_number: int, value: float, table: np.ndarray) -> None:
        if value > self.value:
            self.round, self.value, self.table, self.stale = round_number, value, table, 0
        else:
            self.stale += 1


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
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.fleet = fleet
        self.transport = transport
        self.events = events
        fed = scenario.federated
        self.server_step = server_step or make_server_step(
            fed.server_optimizer,
            fed.server_lr,
            fed.server_momentum,
            fed.server_beta2,
            fed.server_tau,
        )
        self.hooks = list(hooks)
        self.results = ServerResults()
        self.label_stamp = 0
        # labellings as the privacy accounting counts them: labellings of disjoint devices in
        # one step (a validation or verification split by payload or budget) are one release
        self.label_releases = 0
        self.resume = resume
        self.dp = ServerPrivacy.of(scenario, seed, fleet.num_devices)
        self.coverage: BlockCoverage | None = None

    # ------------------------------------------------------------------ messaging
    def exchange(self, requests: list[Message], what: str) -> list[Message | NodeFailure]:
        """Send and receive; log the first node failure; fail if every node failed."""
        replies = self.transport.exchange(requests, what)
        failed = [r for r in replies if isinstance(r, NodeFailure)]
        if failed:
            self.events.message(f"{what}: {len(failed)} node(s) failed: {failed[0].reason}")
        if replies and len(failed) == len(replies):
            raise FedruleError(f"{what}: every node failed: {failed[0].reason}")
        return replies

    # ------------------------------------------------------------------ the template
    def run(self) -> ServerResults:
        self.popularity = self._timed("count", PopularityCount().run, self)
        self.codec = elastic_codec(self.scenario.model, self.popularity)
        self.results.popularity = self.popularity
        self.results.layout = self.codec
        self.tables = self._tables()
        if self.method == "popularity":  # no model: the counts the ranking is made of
            self.table = np.asarray(self.popularity, np.float32)[:, None]
        else:
            self.table = initial_table(self.tables, self.method, self.scenario.model, self.seed)
            if self.method not in COMPRESSED and not self.scenario.privacy.central_dp:
                self.coverage = self.results.coverage = BlockCoverage(self.codec)
            self._timed("train", self.train)
        if self.method == "rule":  # the baselines need no estimator
            self._timed("label", self.label_and_fit)
        self._timed("dispatch", self.search_and_dispatch)
        self.results.table = self.table
        self.results.table_offsets = self.tables.offsets
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.results.phase_seconds.items())
        self.events.message(f"phase times: {times}")
        return self.results

    @property
    def method(self) -> str:
        return self.scenario.federated.method

    def _tables(self) -> ServerTables:
        """The tables this method trains (``fedrule.algorithm.tables``)."""
        if self.method == "popularity":
            return popularity_tables(self.fleet.n_items)
        tiers = len(self.fleet.tier_names)
        if self.method in COMPRESSED:
            budgets = tier_budgets(self.fleet.budget_bytes, self.fleet.tier, tiers)
            model, n_items = self.scenario.model, self.fleet.n_items
            return compressed_tables(self.method, model, n_items, budgets, self.seed)
        return elastic_tables(self.codec, tiers if self.method == "per-tier" else 1)

    def _timed(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        out = fn(*args)
        self.results.phase_seconds[name] = time.perf_counter() - started
        return out

    # ------------------------------------------------------------------ phases
    def train(self) -> None:
        fed = self.scenario.federated
        assignment = training_configs(self)
        metric = f"valid_{self.scenario.eval.metric}"
        self.events.phase("federated training", fed.rounds)
        best, first = _Best(), 1
        if self.resume is not None:
            best, first = self._restore(self.resume), self.resume.round + 1
            assignment = training_configs(self)
            note = " (it had stopped early)" if self.resume.stopped else ""
            self.events.message(f"resumed after round {self.resume.round}{note}")
            for _ in range(self.resume.round):
                self.events.advance()
            if self.resume.stopped:  # early-stopped before the interruption: no more rounds
                first = fed.rounds + 1
        for round_number in range(first, fed.rounds + 1):
            started = time.perf_counter()
            refit = self.method == "rule" and fed.mode == "budgeted" and fed.refit_every
            if refit and round_number > 1 and (round_number - 1) % fed.refit_every == 0:
                self.label_and_fit()  # budgeted devices then train what they will receive
                assignment = training_configs(self)
            record = TrainingRound(round_number, assignment).run(self)
            record[metric] = float("nan")
            every = fed.eval_every
            if every and (round_number % every == 0 or round_number == fed.rounds):
                record[metric] = self.validate(round_number, assignment)
                record.update(self.dp.spent(round_number, self.label_releases))  # and its labels
            record["seconds"] = time.perf_counter() - started
            self.results.rounds.append(record)
            info = {"loss": record["loss"], "trained": record["trained"], "s": record["seconds"]}
            if not np.isnan(record[metric]):
                info[metric] = record[metric]
                best.see(round_number, record[metric], self.table)
            stopped = bool(fed.patience) and best.stale >= fed.patience
            state = self._round_state(round_number, record, best, stopped)
            for hook in self.hooks:
                hook(state)
            self.events.advance(info)
            if stopped:
                self.events.message(
                    f"early stop after round {round_number}: no validation gain in "
                    f"{fed.patience} validations"
                )
                break
        self.events.end_phase()
        if self.coverage is not None:
            self.events.message(self.coverage.summary())
        if best.table is not None:
            self.table = best.table
            self.results.best_round = best.round
            self.events.message(f"kept the table of round {best.round} ({metric} {best.value:.4g})")

    def _round_state(
        self, round_number: int, record: dict, best: _Best, stopped: bool
    ) -> RoundState:
        estimator = self.results.estimator
        return RoundState(
            round=round_number,
            stopped=stopped,
            seed=self.seed,
            table=self.table,
            server_state=self.server_step.state_dict(),
            label_stamp=self.label_stamp,
            label_releases=self.label_releases,
            record=record,
            history=list(self.results.rounds),
            best_round=best.round,
            best_value=best.value,
            best_stale=best.stale,
            best_table=best.table,
            estimator=None if estimator is None else estimator.state_dict(),
            coverage=None if self.coverage is None else self.coverage.weight.copy(),
        )

    def _restore(self, state: RoundState) -> _Best:
        """Continue from a round hook's state (a checkpoint): everything the next round needs."""
        self.table = np.array(state.table, dtype=np.float32)
        self.server_step.load_state_dict(state.server_state)
        self.label_stamp = state.label_stamp
        self.label_releases = state.label_releases
        self.dp.restore(state.history)
        if self.coverage is not None and state.coverage is not None:
            self.coverage = self.results.coverage = BlockCoverage(self.codec, state.coverage)
        self.results.rounds = list(state.history)
        if state.estimator is not None:
            self.results.estimator = PerformanceEstimator.from_state(state.estimator)
        return _Best(state.best_round, state.best_value, state.best_table, state.best_stale)

    def _label(
        self,
        configs: np.ndarray,
        devices: np.ndarray,
        what: str,
        item_is_head: np.ndarray | None = None,
        table: int = 0,
        as_dispatched: bool = False,
        release: bool = True,
    ) -> tuple[ConfigSums, int]:
        """One labelling; ``release=False``: part of a step whose other labellings, of
        disjoint devices, count its release (parallel composition)."""
        self.label_stamp += 1  # a fresh random stream per labelling
        self.label_releases += int(release)
        phase = Labelling(
            configs,
            devices,
            self.label_stamp,
            what,
            item_is_head,
            table,
            as_dispatched=as_dispatched,
        )
        sums, failed = phase.run(self)
        self.label_dropped = phase.dropped
        return sums, failed

    def validate(self, round_number: int, assignment: Assignment) -> float:
        """Validation quality measured by the labelling devices: of the full configuration
        (rule in full mode, where every device trains it), or of what each device trains
        (budgeted mode, nested, per-tier: one labelling per payload, over the labelling devices
        that hold it; ``assignment``: the round's, as trained). A budgeted fleet's full
        configuration is what no device holds: its rarely trained blocks can fall while the
        budgets' configurations still gain."""
        devices = label_devices(
            self.seed, self.fleet.num_devices, self.scenario.estimator.label_users
        )
        what = f"validation {round_number}"
        if self.method == "rule" and self.scenario.federated.mode == "full":
            sums, _ = self._label(self.codec.full_config()[None], devices, what)
        else:
            sums = ConfigSums({}, {})
            self.label_releases += 1  # each labelling device labels one payload
            for index, config in enumerate(assignment.configs):
                mine = devices[assignment.config_of_device[devices] == index]
                if mine.size:
                    table = int(assignment.table_of_config[index])
                    part, _ = self._label(config[None], mine, what, table=table, release=False)
                    sums = sums + part
        return float(sums.means()[self.scenario.eval.metric][0]) if sums.sums else float("nan")

    def label_and_fit(self) -> None:
        est = self.scenario.estimator
        devices, configs = candidate_configs(self)
        self.events.message(
            f"labelling {len(configs)} configurations on {devices.size} devices' validation items"
        )
        tail_weight = self.scenario.search.tail_weight
        heads = head_items(self.popularity, self.scenario.eval.head_share) if tail_weight else None
        total, failed = self._label(configs, devices, "labelling", heads)
        if not total.sums:
            raise FedruleError("no device returned configuration labels")
        labels = objective_labels(total, self.scenario.eval.metric, tail_weight)
        estimator, report = customize.fit(
            self.codec, configs, labels, self.popularity, est, self.seed
        )
        report["devices"] = int(devices.size)
        report["failed_nodes"] = failed
        report["dropped_devices"] = self.label_dropped
        report.update(self.dp.spent(len(self.results.rounds), self.label_releases))  # so far
        self.results.estimator = estimator
        self.results.label_report = report
        self.events.message(
            f"estimator: held-out Spearman {report['holdout_spearman']:.3f} "
            f"on {len(configs)} configurations labelled by {devices.size} devices"
        )

    def _verified(self, found: dict[int, SearchResult]) -> dict[int, SearchResult]:
        """Each budget's best candidate by real validation quality (``search.verify``)."""
        configs = verify.candidates(
            self.codec, found, self._start_configs(found), popularity=self.popularity
        )
        search = self.scenario.search
        devices = verify_devices(
            self.seed,
            self.fleet.num_devices,
            self.scenario.estimator.label_users,
            held_out=search.verify_on == "held-out",
            most=search.verify_users,
        )
        self.events.message(
            f"verifying {len(configs)} candidate configurations on {devices.size} devices' "
            "validation items"
        )
        tail_weight = search.tail_weight
        heads = head_items(self.popularity, self.scenario.eval.head_share) if tail_weight else None
        if search.verify_per_budget:
            chosen = self._verified_per_budget(found, configs, devices, heads)
        else:
            sums, _ = self._label(configs, devices, "verification", heads)
            if not sums.sums:
                return found
            measured = objective_labels(sums, self.scenario.eval.metric, tail_weight)
            chosen = verify.choose(self.codec, found, configs, measured, self.results.estimator)
        report = self.results.label_report
        report.update(self.dp.spent(len(self.results.rounds), self.label_releases))
        return chosen

    def _start_configs(self, found: dict[int, SearchResult]) -> dict[int, np.ndarray] | None:
        """Budgeted mode: what each budget's devices trained before the first estimator."""
        fed = self.scenario.federated
        if fed.mode != "budgeted":
            return None
        how = fed.start_config
        return {b: customize.start_config(self.codec, b, self.popularity, how) for b in found}

    def _verified_per_budget(
        self,
        found: dict[int, SearchResult],
        configs: np.ndarray,
        devices: np.ndarray,
        heads: np.ndarray | None,
    ) -> dict[int, SearchResult]:
        """``search.verify_per_budget``: each budget's candidates that fit, measured on the
        verifying devices of that budget, each device refitted to each candidate as on dispatch
        (one labelling per budget). A budget none of whose devices measured keeps its search's
        result."""
        sizes = np.array([self.codec.memory_bytes(c) for c in configs])
        search, metric = self.scenario.search, self.scenario.eval.metric
        chosen: dict[int, SearchResult] = {}
        self.label_releases += 1  # each verifying device labels for its own budget only
        for budget in sorted(found):
            mine = devices[self.fleet.budget_bytes[devices] == budget]
            fits = np.flatnonzero(sizes <= budget)
            measured = np.full(len(configs), np.nan)
            if mine.size and fits.size:
                what = f"verification at {budget} bytes"
                sums, _ = self._label(
                    configs[fits], mine, what, heads, as_dispatched=True, release=False
                )
                if sums.sums:
                    measured[fits] = objective_labels(sums, metric, search.tail_weight)
            if np.isnan(measured).all():
                chosen[budget] = found[budget]
                continue
            one = {budget: found[budget]}
            chosen |= verify.choose(self.codec, one, configs, measured, self.results.estimator)
        return chosen

    def search_and_dispatch(self) -> None:
        if self.method != "rule":  # no search: what the method's devices receive
            assignment = baseline_dispatch(self)
            self.results.searches = _received(self.tables, assignment, self.fleet.budget_bytes)
            self.results.devices = DispatchAndTest(assignment).run(self)
            return
        self.results.searches = search_budgets(self)
        if self.scenario.search.verify:
            self.results.searches = self._verified(self.results.searches)
        if self.scenario.eval.every_device:
            self.results.every_device = self._test_every_budget(self.results.searches)
        assignment = searched_assignment(self.results.searches, self.fleet.budget_bytes)
        self.results.devices = DispatchAndTest(assignment).run(self)

    def _test_every_budget(self, found: dict[int, SearchResult]) -> dict[int, dict[str, float]]:
        """``eval.every_device``: every budget's configuration tested on every device as if
        dispatched to it (with the user vector the device holds, refitted to the configuration
        under ``federated.personalize_epochs``), as centralised RULE is tested on every user.
        The devices return metric sums over the cohort, not per-device rows."""
        budgets = sorted(found)
        configs = np.stack([np.asarray(found[b].config, dtype=bool) for b in budgets])
        devices = np.arange(self.fleet.num_devices)
        heads = head_items(self.popularity, self.scenario.eval.head_share)
        self.events.message(
            f"testing {len(budgets)} budgets' configurations on every device (eval.every_device)"
        )
        what = "test on every device"
        phase = Labelling(configs, devices, 0, what, heads, target=TEST, as_dispatched=True)
        sums, _ = phase.run(self)  # stamp 0: the dispatched test's random streams
        if not sums.sums:
            return {}
        means = sums.means()
        return {b: {k: float(v[c]) for k, v in means.items()} for c, b in enumerate(budgets)}


def baseline_dispatch(server: FleetServer) -> Assignment:
    """What a baseline's devices receive: the prefix or table they trained; full-prefix the
    largest uniform prefix that fits; popularity the ranking."""
    fleet = server.fleet
    if server.method == "full-prefix":
        return uniform_prefixes(server.codec, fleet.budget_bytes, fleet.tier, per_tier=False)
    if server.method == "popularity":
        return Assignment.one_table([SINGLE_CONFIG.copy()], np.zeros(fleet.num_devices, np.int64))
    return training_configs(server)


def _received(
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
