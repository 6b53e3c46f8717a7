"""The Flower ServerApp: the phases of a fleet run, written as one readable template.

``FleetServer.run`` = discover nodes -> count popularity -> train the supernet for R rounds ->
label configurations on devices and fit the estimator -> search per distinct budget and dispatch
-> collect per-device test results. The server holds the item table, the fleet's registration
data (budget and tier per device) and what devices send back; it never reads device data.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedrule.engine.events import Events
from fedrule.errors import FedruleError
from fedrule.federated.aggregation import DivergedError, RowBlockAggregator
from fedrule.federated.records import bytes_array, from_record, to_record
from fedrule.federated.settings import FAILED, TRAINED, UNAVAILABLE, ModelShape
from fedrule.metrics import MetricSums, head_items
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.scenario.schema import Scenario
from fedrule.search import customize
from fedrule.search.labels import ConfigSums


class SimulationStopped(Exception):
    """The engine asked the server to stop (an error elsewhere, or Ctrl-C)."""


@dataclass
class ServerSettings:
    scenario: Scenario
    seed: int
    shape: ModelShape
    num_nodes: int
    devices_per_node: int
    budget_bytes: np.ndarray  # per device, from the fleet's registration
    tier: np.ndarray
    tier_names: tuple[str, ...]


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
    estimator: Any = None
    phase_seconds: dict[str, float] = field(default_factory=dict)


class FleetServer:
    def __init__(
        self,
        settings: ServerSettings,
        events: Events,
        results: ServerResults,
        stop: threading.Event,
    ) -> None:
        self.s = settings
        self.sc = settings.scenario
        self.events = events
        self.results = results
        self.stop = stop
        self.grid: Grid | None = None
        self.node_of: dict[int, int] = {}

    # ------------------------------------------------------------------ messaging
    def _exchange(self, messages: list[Message], what: str) -> list[Message]:
        """Send, then collect replies until all arrived, the round timed out, or stop is set."""
        assert self.grid is not None
        pending = set(self.grid.push_messages(messages))
        expected = len(messages)
        replies: list[Message] = []
        deadline = time.time() + self.sc.engine.round_timeout
        while pending:
            if self.stop.is_set():
                raise SimulationStopped
            got = list(self.grid.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if pending and time.time() > deadline:
                if not replies:
                    raise FedruleError(
                        f"{what}: none of {expected} nodes answered within "
                        f"{self.sc.engine.round_timeout:g} s",
                        path="engine.round_timeout",
                    )
                # stragglers are dropped, as a real server would: their devices count as failed
                self.events.message(
                    f"{what}: {len(pending)} of {expected} nodes did not answer within "
                    f"{self.sc.engine.round_timeout:g} s and count as failed"
                )
                break
            if pending:
                time.sleep(0.01)
        order = self.partition_of_node if hasattr(self, "partition_of_node") else {}
        replies.sort(key=lambda m: order.get(m.metadata.src_node_id, m.metadata.src_node_id))
        return replies  # in partition order: sums do not depend on arrival order

    def _report_errors(self, replies: list[Message], what: str) -> int:
        """Log the first node error of a phase; fail if no node answered without error."""
        failed = [r for r in replies if r.has_error()]
        if failed:
            self.events.message(f"{what}: {len(failed)} node(s) failed: {failed[0].error.reason}")
        if replies and len(failed) == len(replies):
            raise FedruleError(f"{what}: every node failed: {failed[0].error.reason}")
        return len(failed)

    def _payload_messages(
        self,
        kind: str,
        devices: np.ndarray,
        configs: list[np.ndarray],
        config_of_device: np.ndarray,
        extra: dict | None = None,
        config: dict | None = None,
    ) -> tuple[list[Message], np.ndarray]:
        """One message per node: the distinct encoded payloads its devices receive, which one
        each device gets, and ``extra`` arrays. Returns the messages and each payload's size."""
        payloads = [self.layout.encode(self.table, c) for c in configs]
        sizes = np.array([len(p) for p in payloads], dtype=np.int64)
        by_partition = devices // self.s.devices_per_node
        messages = []
        for partition in np.unique(by_partition):
            members = devices[by_partition == partition]
            used = np.unique(config_of_device[by_partition == partition])
            local = np.searchsorted(used, config_of_device[by_partition == partition])
            arrays = {f"payload_{i}": bytes_array(payloads[g]) for i, g in enumerate(used)}
            arrays.update(payload_of_device=local, devices=members, **(extra or {}))
            messages.append(self._message(int(partition), kind, arrays, config or {}))
        return messages, sizes

    def _message(self, partition: int, kind: str, arrays: dict, config: dict) -> Message:
        content = RecordDict({"arrays": to_record(arrays), "config": ConfigRecord(config)})
        return Message(content, self.node_of[partition], kind)

    def _partition_of(self, reply: Message) -> int:
        return self.partition_of_node[reply.metadata.src_node_id]

    # ------------------------------------------------------------------ phases
    def run(self, grid: Grid) -> None:
        self.grid = grid
        self._timed("discover", self.discover)
        popularity = self._timed("count", self.count_popularity)
        self.results.popularity = popularity
        self.layout = self._make_layout(popularity)
        self.results.layout = self.layout
        rng = np.random.default_rng(np.random.SeedSequence([self.s.seed, 0x7AB1E]))
        shape = self.s.shape
        self.table = (rng.standard_normal((shape.n_items, shape.dim)) * shape.init_std).astype(
            np.float32
        )
        self._timed("train", self.train)
        self._timed("label", self.label_and_fit)
        self._timed("dispatch", self.search_and_dispatch)
        self.results.table = self.table

    def _timed(self, name: str, fn: Any) -> Any:
        started = time.perf_counter()
        out = fn()
        self.results.phase_seconds[name] = time.perf_counter() - started
        return out

    def discover(self) -> None:
        assert self.grid is not None
        deadline = time.time() + self.sc.engine.round_timeout
        while len(list(self.grid.get_node_ids())) < self.s.num_nodes:
            if self.stop.is_set():
                raise SimulationStopped
            if time.time() > deadline:
                raise FedruleError("the simulation engine started no nodes in time")
            time.sleep(0.02)
        nodes = sorted(self.grid.get_node_ids())
        hello = [Message(RecordDict(), node, "query") for node in nodes]
        self.partition_of_node: dict[int, int] = {}
        for reply in self._exchange(hello, "discovery"):
            if reply.has_error():
                raise FedruleError(f"a node failed to start: {reply.error.reason}")
            partition = int(reply.content["info"]["partition"])
            self.partition_of_node[reply.metadata.src_node_id] = partition
            self.node_of[partition] = reply.metadata.src_node_id
        self.events.message(f"{len(nodes)} Flower nodes host {len(self.s.budget_bytes)} devices")

    def count_popularity(self) -> np.ndarray:
        """Devices report their training item counts (summed per node); the server adds them."""
        messages = [
            Message(RecordDict(), node, "query.count") for node in sorted(self.partition_of_node)
        ]
        total = np.zeros(self.s.shape.n_items, dtype=np.int64)
        for reply in self._exchange(messages, "popularity count"):
            if reply.has_error():
                raise FedruleError(f"a node failed to count popularity: {reply.error.reason}")
            total += from_record(reply.content["arrays"])["counts"]
        return total

    def _make_layout(self, popularity: np.ndarray) -> ElasticLayout:
        model = self.sc.model
        self.popularity = popularity
        return ElasticLayout(
            dim=model.dim,
            num_blocks=model.blocks,
            group_of_item=make_groups(popularity, model.groups, model.grouping),
            min_blocks=model.min_blocks_per_group,
            bytes_per_value=model.bytes_per_value,
            rescale=model.rescale,
        )

    # ------------------------------------------------------------------ training
    def _round_devices(self, round_number: int) -> np.ndarray:
        fed = self.sc.federated
        num = self.s.budget_bytes.size
        count = (
            math.ceil(fed.devices_per_round * num)
            if fed.devices_per_round <= 1
            else int(fed.devices_per_round)
        )
        rng = np.random.default_rng(np.random.SeedSequence([self.s.seed, round_number, 0x5A]))
        return np.sort(rng.choice(num, size=min(count, num), replace=False))

    def _training_configs(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The blocks each device receives and trains: distinct configurations and, per device,
        which. Full mode: the full table. Budgeted mode: the estimator's choice for the device's
        budget once an estimator exists, else the largest uniform configuration that fits."""
        num = self.s.budget_bytes.size
        if self.sc.federated.mode == "full":
            return [self.layout.full_config()], np.zeros(num, dtype=np.int64)
        budgets, index = np.unique(self.s.budget_bytes, return_inverse=True)
        configs = []
        for budget in budgets:
            if self.results.estimator is None:
                configs.append(customize.uniform_fit(self.layout, int(budget)))
            else:
                found = customize.search(
                    self.layout, int(budget), self.results.estimator, self.sc.search, self.s.seed
                )
                configs.append(found.config)
        return configs, index.astype(np.int64)

    def train(self) -> None:
        fed = self.sc.federated
        rounds = fed.rounds
        configs, config_of_device = self._training_configs()
        self.events.phase("federated training", rounds)
        for round_number in range(1, rounds + 1):
            started = time.perf_counter()
            refit = fed.mode == "budgeted" and fed.refit_every
            if refit and round_number > 1 and (round_number - 1) % fed.refit_every == 0:
                self.label_and_fit()  # budgeted devices then train what they will receive
                configs, config_of_device = self._training_configs()
            chosen = self._round_devices(round_number)
            messages, sizes = self._payload_messages(
                "train", chosen, configs, config_of_device[chosen], config={"round": round_number}
            )
            by_partition = chosen // self.s.devices_per_node
            aggregator = RowBlockAggregator(*self.table.shape, self.layout.num_blocks)
            counts = {"trained": 0, "unavailable": 0, "failed": 0}
            bytes_down = bytes_up = 0
            loss_sum = loss_count = 0.0
            replies = self._exchange(messages, f"training round {round_number}")
            self._report_errors(replies, f"training round {round_number}")
            answered = {self._partition_of(r) for r in replies}
            for reply in replies:
                if reply.has_error():
                    partition = self._partition_of(reply)
                    counts["failed"] += int((by_partition == partition).sum())
                    continue
                out = from_record(reply.content["arrays"])
                aggregator.add(out["rows"], out["sum_wdelta"], out["sum_w"])
                status = out["status"]
                counts["trained"] += int((status == TRAINED).sum())
                counts["unavailable"] += int((status == UNAVAILABLE).sum())
                counts["failed"] += int((status == FAILED).sum())
                bytes_up += int(out["bytes_up"].sum())
                metrics = reply.content["metrics"]
                loss_sum += float(metrics["loss_sum"])
                loss_count += float(metrics["loss_count"])
                received = out["devices"][status != UNAVAILABLE]  # failed devices downloaded too
                bytes_down += int(sizes[config_of_device[received]].sum())
            silent = ~np.isin(by_partition, list(answered))
            counts["failed"] += int(silent.sum())  # devices of nodes that never answered
            try:
                self.table = aggregator.apply(self.table, self.sc.federated.server_lr)
            except DivergedError:
                raise FedruleError(
                    f"training diverged in round {round_number} (the item table is not finite)",
                    path="federated.local_lr",
                    hint="lower the learning rate",
                ) from None
            every = self.sc.federated.eval_every
            valid = float("nan")
            if every and (round_number % every == 0 or round_number == rounds):
                valid = self.validate(round_number)
            record = {
                "round": round_number,
                "loss": loss_sum / loss_count if loss_count else float("nan"),
                "sampled": int(chosen.size),
                **counts,
                "bytes_down": bytes_down,
                "bytes_up": bytes_up,
                "seconds": time.perf_counter() - started,
                f"valid_{self.sc.eval.metric}": valid,
            }
            self.results.rounds.append(record)
            info = {"loss": record["loss"], "trained": counts["trained"], "s": record["seconds"]}
            if not np.isnan(valid):
                info[f"valid_{self.sc.eval.metric}"] = valid
            self.events.advance(info)
        self.events.end_phase()

    # ------------------------------------------------------------------ estimator
    def _label_devices(self, rng: np.random.Generator) -> np.ndarray:
        num = self.s.budget_bytes.size
        wanted = self.sc.estimator.label_users
        if wanted and wanted < num:
            return np.sort(rng.choice(num, size=wanted, replace=False))
        return np.arange(num)

    def _label(self, configs: np.ndarray, devices: np.ndarray, what: str) -> tuple[ConfigSums, int]:
        """Devices receive the full table, fit their user vector to it, rank all items under each
        configuration and return validation metric sums."""
        self._stamp = getattr(self, "_stamp", 0) + 1  # a fresh random stream per labelling
        messages, _ = self._payload_messages(
            "evaluate.label",
            devices,
            [self.layout.full_config()],
            np.zeros(devices.size, dtype=np.int64),
            extra={"configs": configs},
            config={"stamp": self._stamp},
        )
        total = ConfigSums({}, {})
        replies = self._exchange(messages, what)
        failed = self._report_errors(replies, what)
        for reply in replies:
            if reply.has_error():
                continue
            out = from_record(reply.content["arrays"])
            keys = list(reply.content["config"]["keys"])
            total = total + ConfigSums.from_arrays(keys, out["sums"], out["counts"])
        return total, failed

    def validate(self, round_number: int) -> float:
        """Validation quality of the full configuration, measured by the labelling devices."""
        rng = np.random.default_rng(np.random.SeedSequence([self.s.seed, 0x1ABE1]))
        devices = self._label_devices(rng)
        sums, _ = self._label(
            self.layout.full_config()[None], devices, f"validation {round_number}"
        )
        return float(sums.means()[self.sc.eval.metric][0]) if sums.sums else float("nan")

    def label_and_fit(self) -> None:
        est = self.sc.estimator
        rng = np.random.default_rng(np.random.SeedSequence([self.s.seed, 0x1ABE1]))
        devices = self._label_devices(rng)
        configs = customize.sample_configs(self.layout, est.configs, rng)
        self.events.message(
            f"labelling {len(configs)} configurations on {devices.size} devices' validation items"
        )
        total, failed = self._label(configs, devices, "labelling")
        if not total.sums:
            raise FedruleError("no device returned configuration labels")
        labels = total.means()[self.sc.eval.metric]
        estimator, report = customize.fit(
            self.layout, configs, labels, self.popularity, est, self.s.seed
        )
        report["devices"] = int(devices.size)
        report["failed_nodes"] = failed
        self.results.estimator = estimator
        self.results.label_report = report
        self.events.message(
            f"estimator: held-out Spearman {report['holdout_spearman']:.3f} "
            f"on {len(configs)} configurations labelled by {devices.size} devices"
        )

    # ------------------------------------------------------------------ dispatch
    def search_and_dispatch(self) -> None:
        budgets = np.unique(self.s.budget_bytes)
        found = {}
        for budget in budgets:
            result = customize.search(
                self.layout, int(budget), self.results.estimator, self.sc.search, self.s.seed
            )
            found[int(budget)] = result
        self.results.searches = found
        num = self.s.budget_bytes.size
        index_of_budget = {int(b): i for i, b in enumerate(budgets)}
        config_of_device = np.array([index_of_budget[int(b)] for b in self.s.budget_bytes])
        head = head_items(self.popularity, self.sc.eval.head_share)
        messages, _ = self._payload_messages(
            "evaluate.test",
            np.arange(num),
            [found[int(b)].config for b in budgets],
            config_of_device,
            extra={"item_is_head": head},
        )
        self.events.phase("dispatch and test on every device", len(messages))
        keys: list[str] = []
        table = {
            "accepted": np.zeros(num, dtype=bool),
            "answered": np.zeros(num, dtype=bool),
            "bytes_received": np.zeros(num, dtype=np.int64),
            "evaluated": np.zeros(num, dtype=bool),
        }
        metrics = None
        replies = self._exchange(messages, "dispatch")
        self._report_errors(replies, "dispatch")
        for reply in replies:
            self.events.advance()
            if reply.has_error():
                continue
            out = from_record(reply.content["arrays"])
            keys = list(reply.content["config"]["keys"])
            if metrics is None:
                metrics = np.full((num, len(keys)), np.nan)
            devices = out["devices"].astype(np.int64)
            table["answered"][devices] = True
            table["accepted"][devices] = out["accepted"]
            table["bytes_received"][devices] = out["bytes_received"]
            table["evaluated"][devices] = out["evaluated"]
            metrics[devices] = out["metrics"]
        self.events.end_phase()
        self.results.metric_keys = keys
        table["metrics"] = metrics if metrics is not None else np.zeros((num, 0))
        self.results.devices = table


def build_server_app(
    settings: ServerSettings, events: Events, results: ServerResults, stop: threading.Event
) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        FleetServer(settings, events, results, stop).run(grid)

    return app


__all__ = ["MetricSums", "ServerResults", "ServerSettings", "SimulationStopped", "build_server_app"]
