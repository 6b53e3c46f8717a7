"""Availability over simulated time: windows answered exactly (online, until, from), files read
with one-line errors, and — a property — no offline device is ever sampled."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.errors import ConfigError
from fedrule.fleet import Fleet
from fedrule.scenario.schema import AvailabilityConfig, SystemsConfig, TierConfig
from fedrule.systems.availability import AVAILABILITY, build_availability
from fedrule.systems.availability.always import AlwaysOnline
from fedrule.systems.availability.intervals import Intervals
from fedrule.systems.availability.periodic import PeriodicWindows
from fedrule.systems.context import SystemsContext
from fedrule.systems.sampling import next_online_s, poisson_online, sample_online
from fedrule.units import parse_budget

H = 3600.0


def _fleet(n: int) -> Fleet:
    return Fleet(
        user=np.arange(n, dtype=np.int64) * 2,  # device d holds user 2d
        budget_bytes=np.full(n, 1000, np.int64),
        tier=np.zeros(n, np.int64),
        tier_names=("all",),
        availability=np.ones(n),
        failure_rate=0.0,
    )


def _context(n: int, seed: int = 0, **availability) -> SystemsContext:
    return SystemsContext(
        fleet=_fleet(n),
        user_ids=np.array([f"u{i}" for i in range(2 * n)]),
        tiers=[TierConfig("all", 1.0, parse_budget(1))],
        systems=SystemsConfig(availability=AvailabilityConfig(**availability)),
        seed=seed,
    )


def test_a_periodic_window_by_hand():
    # device 0 online 22:00-06:00, device 1 always (length = period)
    windows = PeriodicWindows(np.array([22 * H, 5 * H]), np.array([8 * H, 24 * H]), 24 * H)
    d = np.array([0, 0, 0, 1])
    t = np.array([23 * H, 30 * H - 1, 12 * H, 7.0])
    assert windows.online(d, t).tolist() == [True, True, False, True]
    assert windows.online_until(d, t).tolist() == [30 * H, 30 * H, 12 * H, np.inf]
    assert windows.online_from(d, t).tolist() == [23 * H, 30 * H - 1, 22 * H, 7.0]
    assert not windows.online(np.array([0]), 30 * H)[0]  # half-open: offline at the end


def test_intervals_merge_and_repeat():
    windows = Intervals.from_rows(
        3,
        device=np.array([0, 0, 0, 1, 1]),
        start_s=np.array([0.0, 5.0, 3.0, 20.0, 0.0]),
        end_s=np.array([2.0, 8.0, 6.0, 30.0, 2.0]),  # device 1's [20, 30) is cut at its period
        period_s=np.array([np.inf, 24.0, np.inf]),
    )
    assert windows.start_s[:-1].tolist() == [0.0, 3.0, 0.0, 20.0]
    assert windows.end_s[:-1].tolist() == [2.0, 8.0, 2.0, 24.0]
    d = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    t = np.array([1.0, 2.0, 3.5, 9.0, 21.0, 1.0, 49.0, 30.0, 0.0])
    assert windows.online(d, t).tolist() == [
        True,
        False,
        True,
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    # device 1's [20, 24) runs on into the next period's [0, 2)
    assert windows.online_until(d, t).tolist() == [2, 2, 8, 9, 26, 2, 50, 30, 0]
    assert windows.online_from(d, t).tolist() == [1, 3, 3.5, np.inf, 21, 1, 49, 44, np.inf]


def test_a_window_covering_the_whole_period_never_ends():
    windows = Intervals.from_rows(
        1, np.array([0]), np.array([0.0]), np.array([10.0]), np.array([10.0])
    )
    assert windows.online_until(np.array([0]), 123.0).tolist() == [np.inf]


def test_daily_phases_are_each_devices_own():
    small = build_availability(_context(5, model="daily", hours_per_day=2.0))
    large = build_availability(_context(50, model="daily", hours_per_day=2.0))
    np.testing.assert_array_equal(small.start_s, large.start_s[:5])
    assert len(set(large.start_s.tolist())) == 50 and (large.start_s < 24 * H).all()
    assert (large.length_s == 2 * H).all()
    other_seed = build_availability(_context(5, seed=1, model="daily", hours_per_day=2.0))
    assert not np.array_equal(other_seed.start_s, small.start_s)
    # a device is online 2 hours of every 24: sampled over a day in minutes, 1/12 of the time
    minutes = np.arange(0, 24 * H, 60.0)
    share = np.mean([large.online(np.arange(50), t).mean() for t in minutes])
    assert share == pytest.approx(2 / 24, abs=1e-3)


def test_charging_windows_start_around_start_h():
    windows = build_availability(
        _context(200, model="charging", start_h=22.0, spread_h=2.0, hours_per_day=8.0)
    )
    starts = np.mod(windows.start_s, 24 * H) / H
    assert ((starts >= 21) & (starts <= 23)).all()
    assert windows.online(np.arange(200), 2 * H).all()  # everyone charges at 02:00
    assert not windows.online(np.arange(200), 12 * H).any()


def test_an_interval_file_in_csv_or_json(tmp_path):
    csv_file = tmp_path / "windows.csv"
    csv_file.write_text("device_id,start_s,end_s\nu0,0,10\nu4,5,6\nu1,0,100\n")
    ctx = _context(3, model="intervals", file=str(csv_file))
    windows = build_availability(ctx)  # u1 is a user, not a device of this fleet: skipped
    assert windows.online(np.arange(3), 5.5).tolist() == [True, False, True]
    json_file = tmp_path / "windows.json"
    json_file.write_text(json.dumps([{"device_id": "u0", "start_s": 0, "end_s": 10}]))
    windows = build_availability(_context(3, model="intervals", file=str(json_file)))
    assert windows.online(np.arange(3), 5.5).tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("text", "suffix", "needle"),
    [
        ("device_id,start_s,end_s\nu0,zero,10\n", ".csv", "(w.csv line 2): start_s 'zero' is not"),
        ("device_id,start_s,end_s\nu0,5,1\n", ".csv", "(w.csv line 2): end_s 1 must be after"),
        ("device_id,start_s,end_s\nnobody,0,1\n", ".csv", "'nobody' is not a user"),
        ("device_id,start\nu0,0\n", ".csv", "has no column 'start_s'"),
        ('[{"device_id": "u0", "start_s": 0}]', ".json", "(w.json item 0): no end_s"),
        ("{not json", ".json", "is not JSON"),
        ("device_id,start_s,end_s\nu1,0,1\n", ".csv", "gives no window to any device"),
    ],
)
def test_bad_interval_files_are_one_line_errors(tmp_path, text, suffix, needle):
    path = tmp_path / f"w{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_availability(_context(3, model="intervals", file=str(path)))
    line = err.value.one_line()
    assert needle in line and line.startswith("fleet.systems.availability.file"), line


def test_the_registry_is_the_schemas_list():
    from fedrule.scenario.schema import AVAILABILITY_MODELS

    assert tuple(AVAILABILITY) == AVAILABILITY_MODELS


def test_with_everyone_online_sampling_is_todays():
    from fedrule import seeds
    from fedrule.algorithm.training import sample_round

    for round_number in range(1, 6):
        rng = seeds.server_rng(3, seeds.ROUND_SAMPLE, round_number)
        got = sample_online(AlwaysOnline(40), 0.0, 7, rng)
        np.testing.assert_array_equal(got, sample_round(3, round_number, 40, 7))
        rng = seeds.server_rng(3, seeds.ROUND_SAMPLE, round_number)
        got = poisson_online(AlwaysOnline(40), 0.0, 0.2, rng)
        np.testing.assert_array_equal(got, sample_round(3, round_number, 40, 0.2, poisson=True))


windows_strategy = st.lists(
    st.tuples(st.integers(0, 9), st.floats(0, 100), st.floats(0.01, 50)), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(
    windows=windows_strategy,
    periodic=st.booleans(),
    times=st.lists(st.floats(0, 300), min_size=1, max_size=10),
    count=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_no_offline_device_is_ever_sampled(windows, periodic, times, count, seed):
    device, start, length = (np.array(c) for c in zip(*windows, strict=True))
    period = np.full(10, 120.0) if periodic else None
    availability = Intervals.from_rows(10, device, start, start + length, period)
    rng = np.random.default_rng(seed)
    for t in times:
        chosen = sample_online(availability, t, count, rng)
        assert availability.online(chosen, t).all()
        for d in chosen.tolist():  # and by the windows themselves, not the index
            mine = device == d
            x = t % 120.0 if periodic else t
            ends = np.minimum(start + length, 120.0) if periodic else start + length
            assert ((start[mine] <= x) & (x < ends[mine])).any()
        until = availability.online_until(chosen, t)
        assert (until > t).all()
        assert (availability.online(chosen, np.nextafter(until, -np.inf))).all()
        back = next_online_s(availability, t)
        if np.isfinite(back):
            assert availability.online(np.arange(10), back).any()
