"""``async``: buffered asynchronous aggregation (FedBuff, Nguyen et al. 2022), as a deterministic
event simulation on the simulated clock.

At most ``concurrency`` devices train at once. A free slot goes at once to a device drawn from
those online and not training (one server stream for the whole run, ``seeds.ASYNC_SAMPLE``);
it downloads the current table (version v: the number of server steps so far) and its upload
arrives ``duration_of`` seconds later, unless it goes offline first (then it drops out then, and
its slot frees). An update arriving when the server is at version V is ``s = V - v`` steps
stale: dropped when ``s > max_staleness``, else buffered with weight ``staleness(s)``. Every
``buffer`` buffered updates the server steps (V + 1), and a slot freed by that arrival gets the
new table. When no device is online for a free slot, the slot waits for the next one to come
online.

``next_step`` runs the simulation to the next server step and returns which updates form it,
on which table version each was computed, their staleness and weights, and who dropped or
started since the previous step: the algorithm layer applies the step (training each update's
device on its table version) and moves on. This mirrors FedScale's ``AsyncAggregator``
(``fedscale/cloud/aggregation/async_aggregator.py``): a heap of start and finish events, stale
updates beyond ``max_staleness`` not counted towards the buffer, weights 1 / sqrt(1 + s).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedrule import seeds
from fedrule.errors import FedruleError
from fedrule.systems.availability.base import Availability
from fedrule.systems.clock import Clock
from fedrule.systems.policies.staleness import STALENESS
from fedrule.systems.sampling import next_online_s, sample_online

ARRIVE, DROP, WAKE = 0, 1, 2
MAX_EVENTS_PER_STEP = 100_000  # events without a server step: the simulation makes no progress

DurationOf = Callable[[np.ndarray, float, np.ndarray], np.ndarray]
"""(devices, start time, task numbers) -> each device's seconds from its start to its upload's
arrival (``fedrule.systems.clock.device_seconds`` of its work; the task number is the stream a
device trains with, as the round number is in synchronous rounds)."""


@dataclass(frozen=True, eq=False)
class AsyncStep:
    """One server step: the updates that form it (in arrival order) and what happened since the
    previous step."""

    step: int  # the table version this step produces (1 for the first)
    time_s: float  # when the step's last update arrived (the clock is there)
    devices: np.ndarray
    tasks: np.ndarray
    trained_on: np.ndarray  # the table version each update was computed on
    staleness: np.ndarray
    weight: np.ndarray
    started_s: np.ndarray
    arrived_s: np.ndarray
    stale: np.ndarray  # devices whose updates arrived too stale since the previous step
    offline: np.ndarray  # devices that went offline before finishing since the previous step
    started: np.ndarray  # devices that started a task since the previous step (offered)


@dataclass(frozen=True)
class AsyncPolicy:
    name: ClassVar[str] = "async"
    synchronous: ClassVar[bool] = False

    concurrency: int
    buffer: int
    max_staleness: int
    staleness: str = "inverse-sqrt"

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.buffer < 1 or self.max_staleness < 0:
            raise ValueError("concurrency and buffer must be >= 1, max_staleness >= 0")
        if self.staleness not in STALENESS:
            raise ValueError(f"unknown staleness function {self.staleness!r}")

    def num_candidates(self, target: int) -> int:
        return self.concurrency

    def weight(self, staleness: np.ndarray) -> np.ndarray:
        return STALENESS[self.staleness](staleness)

    def simulate(
        self,
        clock: Clock,
        availability: Availability,
        duration_of: DurationOf,
        seed: int,
        max_events_per_step: int = MAX_EVENTS_PER_STEP,
    ) -> BufferedAsync:
        return BufferedAsync(self, clock, availability, duration_of, seed, max_events_per_step)


@dataclass
class _Task:
    device: int
    version: int
    started_s: float
    ends_s: float


@dataclass
class _Window:
    """What happened since the previous server step."""

    updates: list[tuple[int, int, int, int, float, float, float]] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    offline: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)


class BufferedAsync:
    """The event simulation of one asynchronous run (``AsyncPolicy.simulate``)."""

    def __init__(
        self,
        policy: AsyncPolicy,
        clock: Clock,
        availability: Availability,
        duration_of: DurationOf,
        seed: int,
        max_events_per_step: int = MAX_EVENTS_PER_STEP,
    ) -> None:
        self.policy, self.clock, self.availability = policy, clock, availability
        self.max_events_per_step = max_events_per_step
        self.duration_of = duration_of
        self.rng = seeds.server_rng(seed, seeds.ASYNC_SAMPLE)
        self.version = 0
        self.num_tasks = 0
        self.events: list[tuple[float, int, int, int]] = []  # (time, sequence, kind, task)
        self.sequence = 0
        self.tasks: dict[int, _Task] = {}
        self.idle = 0  # free slots waiting for a device to come online
        self.wake_at: float | None = None
        self.window = _Window()
        self.started = False

    # ------------------------------------------------------------------ events
    def _push(self, time_s: float, kind: int, task: int) -> None:
        heapq.heappush(self.events, (time_s, self.sequence, kind, task))
        self.sequence += 1

    def _busy(self) -> np.ndarray:
        return np.array(sorted(t.device for t in self.tasks.values()), dtype=np.int64)

    def _fill(self, now_s: float, slots: int) -> None:
        """Give ``slots`` free slots to devices online at ``now_s`` and not training; slots left
        over wait for the next device to come online."""
        if slots <= 0:
            self.idle = 0
            return
        busy = self._busy()
        chosen = sample_online(self.availability, now_s, slots, self.rng, exclude=busy)
        if chosen.size:
            numbers = np.arange(self.num_tasks, self.num_tasks + chosen.size)
            self.num_tasks += chosen.size
            seconds = np.asarray(self.duration_of(chosen, now_s, numbers), dtype=np.float64)
            offline_at = self.availability.online_until(chosen, now_s)
            for device, task, took, gone in zip(
                chosen.tolist(),
                numbers.tolist(),
                seconds.tolist(),
                offline_at.tolist(),
                strict=True,
            ):
                if not took >= 0:
                    raise ValueError(f"device {device} takes {took} seconds")
                ends = now_s + took
                finishes = ends <= gone
                self.tasks[task] = _Task(device, self.version, now_s, ends if finishes else gone)
                self._push(ends if finishes else gone, ARRIVE if finishes else DROP, task)
                self.window.started.append(device)
        self.idle = slots - int(chosen.size)
        if self.idle and self.wake_at is None:
            wake = next_online_s(self.availability, now_s, np.concatenate([busy, chosen]))
            if np.isfinite(wake):
                self.wake_at = float(wake if wake > now_s else np.nextafter(now_s, np.inf))
                self._push(self.wake_at, WAKE, -1)

    def next_step(self) -> AsyncStep:
        """Run the simulation to the next server step (the clock moves to it)."""
        if not self.started:
            self.started = True
            self._fill(self.clock.now_s, self.policy.concurrency)
        for _ in range(self.max_events_per_step):
            if not self.events:
                raise FedruleError(
                    f"the asynchronous policy stalls at simulated second {self.clock.now_s:g}: "
                    "no device trains and none comes online again",
                    path="fleet.systems.availability",
                )
            time_s, _, kind, task = heapq.heappop(self.events)
            self.clock.wait_until(time_s)
            if kind == WAKE:
                self.wake_at = None
                self._fill(time_s, self.idle)
                continue
            job = self.tasks.pop(task)
            if kind == DROP:
                self.window.offline.append(job.device)
                self._fill(time_s, 1 + self.idle)
                continue
            stale = self.version - job.version
            if stale > self.policy.max_staleness:
                self.window.stale.append(job.device)
            else:
                weight = float(self.policy.weight(np.array([stale]))[0])
                self.window.updates.append(
                    (job.device, task, job.version, stale, weight, job.started_s, time_s)
                )
            stepped = len(self.window.updates) == self.policy.buffer
            if stepped:
                self.version += 1
                step = self._emit(time_s)
            self._fill(time_s, 1 + self.idle)  # after a step: the freed slot gets the new table
            if stepped:
                return step
        raise FedruleError(
            f"the asynchronous policy makes no progress by simulated second {self.clock.now_s:g}: "
            "devices keep going offline before their updates arrive",
            path="fleet.systems.availability",
            hint="longer online windows, or faster devices",
        )

    def _emit(self, time_s: float) -> AsyncStep:
        window, self.window = self.window, _Window()
        columns = list(zip(*window.updates, strict=True))
        ints = [np.array(c, dtype=np.int64) for c in columns[:4]]
        floats = [np.array(c, dtype=np.float64) for c in columns[4:]]
        return AsyncStep(
            step=self.version,
            time_s=time_s,
            devices=ints[0],
            tasks=ints[1],
            trained_on=ints[2],
            staleness=ints[3],
            weight=floats[0],
            started_s=floats[1],
            arrived_s=floats[2],
            stale=np.array(window.stale, dtype=np.int64),
            offline=np.array(window.offline, dtype=np.int64),
            started=np.array(window.started, dtype=np.int64),
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything the simulation needs to go on exactly (plain data; the clock is saved by
        its owner)."""
        return {
            "rng": self.rng.bit_generator.state,
            "version": self.version,
            "num_tasks": self.num_tasks,
            "events": [list(e) for e in self.events],
            "sequence": self.sequence,
            "tasks": {
                k: [t.device, t.version, t.started_s, t.ends_s] for k, t in self.tasks.items()
            },
            "idle": self.idle,
            "wake_at": self.wake_at,
            "window": [
                list(map(list, self.window.updates)),
                self.window.stale,
                self.window.offline,
                self.window.started,
            ],
            "started": self.started,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.version, self.num_tasks = int(state["version"]), int(state["num_tasks"])
        self.events = [tuple(e) for e in state["events"]]
        heapq.heapify(self.events)
        self.sequence = int(state["sequence"])
        self.tasks = {
            int(k): _Task(int(v[0]), int(v[1]), v[2], v[3]) for k, v in state["tasks"].items()
        }
        self.idle, self.wake_at, self.started = (
            int(state["idle"]),
            state["wake_at"],
            state["started"],
        )
        updates, stale, offline, started = state["window"]
        self.window = _Window(
            [tuple(u) for u in updates], list(stale), list(offline), list(started)
        )


def build(settings: object) -> AsyncPolicy:
    return AsyncPolicy(
        int(settings.concurrency),
        int(settings.buffer),
        int(settings.max_staleness),
        str(settings.staleness),
    )
