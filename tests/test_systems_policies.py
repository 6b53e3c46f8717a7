"""Round policies on hand-computed rounds: sync waits for all, deadline drops exactly the devices
later than it, overcommit keeps the K fastest, async (FedBuff) forms its server steps with the
staleness weights worked out by hand."""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.scenario.schema import ROUND_POLICIES, STALENESS_FUNCTIONS, RoundPolicyConfig
from fedrule.systems.availability.always import AlwaysOnline
from fedrule.systems.availability.intervals import Intervals
from fedrule.systems.clock import Clock
from fedrule.systems.participation import Participation
from fedrule.systems.policies import KEPT, LATE, OFFLINE, POLICIES, make_policy
from fedrule.systems.policies.asynchronous import AsyncPolicy
from fedrule.systems.policies.deadline import DeadlinePolicy
from fedrule.systems.policies.overcommit import OvercommitPolicy
from fedrule.systems.policies.staleness import STALENESS
from fedrule.systems.policies.sync import SyncPolicy

INF = np.inf
DEVICES = np.array([2, 5, 7, 9, 11])
SECONDS = np.array([30.0, 5.0, 50.0, 12.0, 12.0])


def test_sync_waits_for_every_device_and_drops_those_that_go_offline():
    clock = Clock(100.0)
    # device 7 goes offline at 140 (40 s in), before its 50 s; device 2 exactly as it finishes
    offline_at = np.array([130.0, INF, 140.0, INF, INF])
    out = SyncPolicy().decide(clock, DEVICES, SECONDS, offline_at, target=5)
    assert out.status.tolist() == [KEPT, KEPT, OFFLINE, KEPT, KEPT]
    assert out.kept.tolist() == [2, 5, 9, 11] and out.offline.tolist() == [7]
    assert out.duration_s == 40.0  # the last event: device 2 at 30 s, device 7 gone at 40 s
    assert out.finish_s[2] == INF
    everyone = SyncPolicy().decide(clock, DEVICES, SECONDS, np.full(5, INF), target=5)
    assert everyone.duration_s == 50.0 and (everyone.status == KEPT).all()
    assert clock.now_s == 100.0  # the caller moves the clock


def test_deadline_drops_exactly_the_devices_later_than_it():
    clock = Clock()
    policy = DeadlinePolicy(12.0)
    out = policy.decide(clock, DEVICES, SECONDS, np.full(5, INF), target=5)
    assert out.kept.tolist() == [5, 9, 11]  # 5 s, 12 s and 12 s: on the deadline counts
    assert out.late.tolist() == [2, 7]
    assert out.duration_s == 12.0
    # offline before its finish and before the deadline: offline; after the deadline: late
    offline_at = np.array([INF, 3.0, 20.0, INF, INF])
    out = policy.decide(clock, DEVICES, SECONDS, offline_at, target=5)
    assert out.status.tolist() == [LATE, OFFLINE, LATE, KEPT, KEPT]
    # nobody late: the round ends at the last arrival
    out = DeadlinePolicy(60.0).decide(clock, DEVICES, SECONDS, np.full(5, INF), target=5)
    assert out.duration_s == 50.0 and (out.status == KEPT).all()
    with pytest.raises(ValueError):
        DeadlinePolicy(0.0)


def test_overcommit_keeps_the_k_fastest():
    policy = OvercommitPolicy(0.3)
    assert [policy.num_candidates(k) for k in (1, 3, 10, 20)] == [2, 4, 13, 26]
    clock = Clock()
    out = policy.decide(clock, DEVICES, SECONDS, np.full(5, INF), target=3)
    # 5 s (device 5), then 12 s twice (9 before 11 on the tie), then 30 s, 50 s
    assert out.kept.tolist() == [5, 9, 11] and out.late.tolist() == [2, 7]
    assert out.duration_s == 12.0  # the K-th arrival
    # the fastest goes offline first: the next ones move up
    offline_at = np.array([INF, 1.0, INF, INF, INF])
    out = policy.decide(clock, DEVICES, SECONDS, offline_at, target=3)
    assert out.kept.tolist() == [2, 9, 11] and out.offline.tolist() == [5]
    assert out.late.tolist() == [7] and out.duration_s == 30.0
    # fewer than K finish: the last event ends the round
    out = policy.decide(clock, DEVICES[:2], SECONDS[:2], np.array([INF, 1.0]), target=3)
    assert out.kept.tolist() == [2] and out.duration_s == 30.0


def test_policies_come_from_their_settings_by_name():
    assert tuple(POLICIES) == ROUND_POLICIES
    assert tuple(STALENESS) == STALENESS_FUNCTIONS
    assert make_policy(RoundPolicyConfig()) == SyncPolicy()
    assert make_policy(RoundPolicyConfig(kind="deadline", deadline_s=9)) == DeadlinePolicy(9.0)
    assert make_policy(RoundPolicyConfig(kind="overcommit", overcommit=0.5)) == OvercommitPolicy(
        0.5
    )
    assert make_policy(
        RoundPolicyConfig(kind="async", concurrency=3, buffer=2, max_staleness=1)
    ) == AsyncPolicy(3, 2, 1, "inverse-sqrt")


def _constant_durations(seconds: dict[int, float]):
    def duration_of(devices, start_s, tasks):
        return np.array([seconds[d] for d in devices.tolist()])

    return duration_of


def test_async_two_devices_by_hand_with_staleness_weights():
    """Devices 0 (10 s a task) and 1 (25 s), both training at once, a buffer of 2.

    t=0   both start on table 0
    t=10  device 0 arrives (staleness 0, weight 1): buffer 1; restarts on table 0 -> t=20
    t=20  device 0 arrives (0, 1): buffer full -> server step 1; restarts on table 1 -> t=30
    t=25  device 1 arrives, computed on table 0 at version 1: staleness 1, weight 1/sqrt(2);
          restarts on table 1 -> t=50
    t=30  device 0 arrives (0, 1): buffer full -> server step 2 of [device 1, device 0]
    """
    clock = Clock()
    policy = AsyncPolicy(concurrency=2, buffer=2, max_staleness=5)
    sim = policy.simulate(clock, AlwaysOnline(2), _constant_durations({0: 10.0, 1: 25.0}), seed=0)
    first = sim.next_step()
    assert (first.step, first.time_s, clock.now_s) == (1, 20.0, 20.0)
    assert first.devices.tolist() == [0, 0] and first.trained_on.tolist() == [0, 0]
    assert first.staleness.tolist() == [0, 0] and first.weight.tolist() == [1.0, 1.0]
    assert first.arrived_s.tolist() == [10.0, 20.0] and first.started_s.tolist() == [0.0, 10.0]
    assert sorted(first.started.tolist()) == [0, 0, 1]  # the two first tasks and the restart
    second = sim.next_step()
    assert (second.step, second.time_s) == (2, 30.0)
    assert second.devices.tolist() == [1, 0]
    assert second.trained_on.tolist() == [0, 1] and second.staleness.tolist() == [1, 0]
    assert second.weight.tolist() == [1 / math.sqrt(2), 1.0]
    assert second.tasks.tolist() == [1, 3]  # device 1's first task; device 0's third (task 3)


def test_async_drops_updates_older_than_max_staleness():
    clock = Clock()
    policy = AsyncPolicy(concurrency=2, buffer=2, max_staleness=0)
    sim = policy.simulate(clock, AlwaysOnline(2), _constant_durations({0: 10.0, 1: 25.0}), seed=0)
    sim.next_step()  # t=20, as above
    second = sim.next_step()
    # device 1's update (staleness 1) is dropped at t=25 and not counted in the buffer; device 0
    # arrives at 30 and 40 (both on table 1): step 2 at t=40
    assert second.stale.tolist() == [1]
    assert second.devices.tolist() == [0, 0] and second.time_s == 40.0
    record = Participation.empty(2)
    record.record_step(second)
    assert record.late.tolist() == [0, 1] and record.completed.tolist() == [2, 0]


def test_async_goes_on_exactly_from_its_state():
    def make():
        clock = Clock()
        availability = Intervals.from_rows(
            6,
            np.arange(6).repeat(2),
            np.tile([0.0, 60.0], 6) + np.arange(6).repeat(2),
            np.tile([40.0, 100.0], 6) + np.arange(6).repeat(2),
            period_s=np.full(6, 120.0),
        )
        durations = _constant_durations({d: 7.0 + 3 * d for d in range(6)})
        return clock, AsyncPolicy(3, 2, 2).simulate(clock, availability, durations, seed=4)

    clock, sim = make()
    steps = [sim.next_step() for _ in range(4)]
    buffer = io.BytesIO()  # checkpoint-ready: plain data that torch.load(weights_only) reads
    torch.save({"sim": sim.state_dict(), "clock": clock.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    state, now = saved["sim"], saved["clock"]["now_s"]
    later = [sim.next_step() for _ in range(5)]
    clock2, again = make()
    again.load_state_dict(state)
    clock2.wait_until(now)
    resumed = [again.next_step() for _ in range(5)]
    assert steps[-1].step == 4
    for a, b in zip(later, resumed, strict=True):
        assert a.step == b.step and a.time_s == b.time_s
        assert a.devices.tolist() == b.devices.tolist() and a.weight.tolist() == b.weight.tolist()


@settings(max_examples=40, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.integers(0, 7), st.floats(0, 200), st.floats(1, 100)), min_size=3, max_size=25
    ),
    durations=st.lists(st.floats(0.05, 1.0), min_size=8, max_size=8),
    concurrency=st.integers(1, 4),
    buffer=st.integers(1, 3),
    max_staleness=st.integers(0, 3),
    seed=st.integers(0, 1000),
)
def test_async_starts_only_online_idle_devices(
    windows, durations, concurrency, buffer, max_staleness, seed
):
    device, start, length = (np.array(c) for c in zip(*windows, strict=True))
    availability = Intervals.from_rows(8, device, start, start + length, np.full(8, 300.0))
    started: list[tuple[int, float, float]] = []

    def duration_of(devices, start_s, tasks):
        assert availability.online(devices, start_s).all()  # only online devices start
        gone = availability.online_until(devices, start_s)
        for d, offline_at in zip(devices.tolist(), gone.tolist(), strict=True):
            for other, began, ends in started:  # never twice in flight
                assert other != d or not began <= start_s < ends
            started.append((d, start_s, min(start_s + durations[d], offline_at)))
        return np.array([durations[d] for d in devices.tolist()])

    clock = Clock()
    sim = AsyncPolicy(concurrency, buffer, max_staleness).simulate(
        clock, availability, duration_of, seed
    )
    last = 0.0
    for _ in range(5):
        step = sim.next_step()
        assert step.time_s >= last and step.devices.size == buffer
        assert (step.staleness <= max_staleness).all()
        assert np.allclose(step.weight, 1 / np.sqrt(1 + step.staleness))
        # at most `concurrency` tasks were in flight at any time
        for _, began, _ in started:
            assert sum(b <= began < e for _, b, e in started) <= concurrency
        last = step.time_s


def test_async_says_when_it_cannot_go_on():
    from fedrule.errors import FedruleError

    never = Intervals.from_rows(2, np.array([0]), np.array([0.0]), np.array([5.0]))
    sim = AsyncPolicy(1, 1, 0).simulate(Clock(), never, _constant_durations({0: 1.0}), seed=0)
    # device 0 finishes at 1, 2, 3, 4 and 5 s (as its only window ends: still in time) ...
    assert [sim.next_step().time_s for _ in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(FedruleError, match="stalls"):  # ... and is never online again
        sim.next_step()
    short = Intervals.from_rows(
        1, np.array([0]), np.array([0.0]), np.array([1.0]), period_s=np.array([10.0])
    )
    sim = AsyncPolicy(1, 1, 0).simulate(
        Clock(), short, _constant_durations({0: 2.0}), seed=0, max_events_per_step=500
    )
    with pytest.raises(FedruleError, match="no progress"):  # a 2 s task in 1 s windows
        sim.next_step()


def test_participation_by_tier():
    record = Participation.empty(4)
    out = DeadlinePolicy(12.0).decide(
        Clock(), np.array([0, 1, 2]), np.array([5.0, 20.0, 1.0]), np.array([INF, INF, 0.5]), 3
    )
    record.record_round(out)
    assert record.offered.tolist() == [1, 1, 1, 0]
    assert (record.completed.tolist(), record.late.tolist(), record.offline.tolist()) == (
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
    )
    rows = record.by_tier(np.array([0, 0, 1, 1]), ("watch", "tv"))
    assert rows[0] == {
        "tier": "watch",
        "devices": 2,
        "rounds_offered": 2,
        "rounds_completed": 1,
        "rounds_late": 1,
        "rounds_offline": 0,
        "share_ever_completed": 0.5,
    }
    assert rows[1]["share_ever_completed"] == 0.0 and rows[1]["rounds_offline"] == 1
    again = Participation.from_state(record.state_dict())
    assert again.completed.tolist() == record.completed.tolist()
