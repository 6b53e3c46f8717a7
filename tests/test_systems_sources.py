"""Where profiles come from: tiers (values or distributions, each device from its own stream),
the device trace's columns, FedScale's pickles (read by a restricted unpickler)."""

import os
import pickle

import numpy as np
import pytest

from fedrule.errors import ConfigError
from fedrule.fleet import Tier, fleet_from_tiers, fleet_from_trace
from fedrule.scenario.schema import (
    PROFILE_SOURCES,
    AvailabilityConfig,
    SystemsConfig,
    TierConfig,
)
from fedrule.systems.context import SystemsContext
from fedrule.systems.fedscale_format import read_capacity
from fedrule.systems.safe_pickle import load_plain
from fedrule.systems.sources import SOURCES, build_profiles
from fedrule.units import parse_budget

USER_IDS = np.array([str(100 + i) for i in range(40)])


def _tiers(**quantities) -> list[TierConfig]:
    watch = {k: v[0] for k, v in quantities.items()}
    tv = {k: v[1] for k, v in quantities.items()}
    return [
        TierConfig("watch", 0.5, parse_budget("1/16"), **watch),
        TierConfig("tv", 0.5, parse_budget(1), **tv),
    ]


def _context(num_devices: int, tiers: list[TierConfig], seed: int = 0, **systems) -> SystemsContext:
    fleet = fleet_from_tiers(
        np.arange(num_devices),
        [Tier(t.name, t.share, t.budget) for t in tiers],
        10_000,
        0.0,
        seed,
    )
    return SystemsContext(fleet, USER_IDS, tiers, SystemsConfig(**systems), seed=seed)


LOGNORMAL = {"lognormal": {"median": 500, "sigma": 0.5}}


def test_no_profile_keys_means_no_profiles():
    assert build_profiles(_context(10, _tiers())) is None
    assert tuple(SOURCES) == PROFILE_SOURCES


def test_tier_values_and_distributions():
    tiers = _tiers(
        examples_per_second=(LOGNORMAL, 5000),
        download_mbps=(2, {"uniform": {"low": 50, "high": 150}}),
        latency_s=(0.3, None),
    )
    ctx = _context(20, tiers)
    profiles = build_profiles(ctx)
    watch, tv = ctx.fleet.tier == 0, ctx.fleet.tier == 1
    assert (profiles.examples_per_second[tv] == 5000).all()
    assert len(set(profiles.examples_per_second[watch].tolist())) == watch.sum()  # drawn
    assert (profiles.download_mbps[watch] == 2).all()
    assert ((profiles.download_mbps[tv] >= 50) & (profiles.download_mbps[tv] <= 150)).all()
    assert (profiles.upload_mbps == np.inf).all()  # not given: no cost
    assert (profiles.latency_s[watch] == 0.3).all() and (profiles.latency_s[tv] == 0).all()
    assert (profiles.availability.online(np.arange(20), 12345.0)).all()


def test_a_devices_draw_depends_on_the_seed_and_its_number_only():
    tiers = [TierConfig("all", 1.0, parse_budget(1), examples_per_second=LOGNORMAL)]
    small = build_profiles(_context(5, tiers)).examples_per_second
    large = build_profiles(_context(40, tiers)).examples_per_second
    np.testing.assert_array_equal(small, large[:5])  # whatever the fleet's size
    again = build_profiles(_context(40, tiers)).examples_per_second
    np.testing.assert_array_equal(again, large)  # the same seed, the same values
    other = build_profiles(_context(40, tiers, seed=1)).examples_per_second
    assert not np.array_equal(other, large)
    # the draw of one quantity does not depend on which others are drawn
    both = [
        TierConfig("all", 1.0, parse_budget(1), examples_per_second=LOGNORMAL, latency_s=LOGNORMAL)
    ]
    np.testing.assert_array_equal(build_profiles(_context(40, both)).examples_per_second, large)
    # median 500: about half the devices above it
    assert 0.3 < (large > 500).mean() < 0.7


def _trace_fleet(tmp_path, text: str):
    path = tmp_path / "devices.csv"
    path.write_text(text)
    tiers = _tiers(download_mbps=(2.0, 100.0), examples_per_second=(10.0, 1000.0))
    fleet = fleet_from_trace(path, USER_IDS, [t.name for t in tiers], 10_000, 0.0)
    return SystemsContext(fleet, USER_IDS, tiers, SystemsConfig(source="trace"), trace=str(path))


def test_trace_columns_beside_budget(tmp_path):
    ctx = _trace_fleet(
        tmp_path,
        "device_id,budget,tier,download_mbps,latency_s\n"
        "103,1/16,watch,0.5,0.25\n"
        "101,1,tv,,0\n"  # an empty cell: the tier's value
        "107,1,tv,40,1.5\n",
    )
    profiles = build_profiles(ctx)
    # devices in user order: 101 (tv), 103 (watch), 107 (tv)
    assert profiles.download_mbps.tolist() == [100.0, 0.5, 40.0]
    assert profiles.latency_s.tolist() == [0.0, 0.25, 1.5]
    assert profiles.examples_per_second.tolist() == [1000.0, 10.0, 1000.0]  # no column: tiers


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("fast", "download_mbps 'fast' is not a number"),
        ("-2", "download_mbps '-2' must be > 0"),
        ("0", "download_mbps '0' must be > 0"),
        ("inf", "download_mbps 'inf' is not a finite number"),
    ],
)
def test_a_bad_trace_cell_is_a_one_line_error_naming_the_file_and_line(tmp_path, cell, needle):
    ctx = _trace_fleet(tmp_path, f"device_id,budget,download_mbps\n101,1,3\n102,1,{cell}\n")
    with pytest.raises(ConfigError) as err:
        build_profiles(ctx)
    assert err.value.one_line().startswith("fleet.trace (devices.csv line 3): " + needle)


def _pickle(path, value) -> str:
    path.write_bytes(pickle.dumps(value))
    return str(path)


def test_fedscale_capacity_in_fedrules_units(tmp_path):
    # computation: ms of inference per sample; communication: kbit/s of 1024 bits
    capacity = _pickle(
        tmp_path / "client_device_capacity",
        {
            3: {"computation": 20.0, "communication": 5000.0},
            1: {"computation": 1.0, "communication": 1000.0},
            2: {"computation": 125.0, "communication": 250.0},
        },
    )
    tiers = [TierConfig("all", 1.0, parse_budget(1), latency_s=0.1)]
    profiles = build_profiles(_context(4, tiers, source="fedscale", fedscale_capacity=capacity))
    # devices take the clients in ascending id order, cyclically: 1, 2, 3, 1
    np.testing.assert_allclose(
        profiles.examples_per_second, [1000 / 3, 1000 / 375, 1000 / 60, 1000 / 3], rtol=1e-15
    )
    np.testing.assert_allclose(profiles.download_mbps, [1.024, 0.256, 5.12, 1.024], rtol=1e-15)
    np.testing.assert_array_equal(profiles.upload_mbps, profiles.download_mbps)
    assert profiles.latency_s.tolist() == [0.1] * 4  # FedScale has none: the tiers'
    # a device training 60 samples with 100 kB up and down takes FedScale's own seconds:
    # 3 x 60 x 20 / 1000 (computation) + (2 x 100000 / 1024 x 8) / 5000 (communication)
    from fedrule.systems.clock import PhaseWork, device_seconds

    seconds = device_seconds(
        profiles, np.array([2]), PhaseWork(np.array([100_000]), np.array([60]), np.array([100_000]))
    )
    fedscale = 3 * 60 * 20 / 1000 + (2 * 100_000 / 1024 * 8) / 5000
    assert seconds.total[0] - 0.1 == pytest.approx(fedscale, rel=1e-12)


def test_fedscale_behaviour_trace_as_availability(tmp_path):
    trace = _pickle(
        tmp_path / "client_behave_trace",
        {
            7: {"active": [0, 100], "inactive": [50, 200], "finish_time": 300, "duration": 300},
            9: {"active": [10], "inactive": [20], "finish_time": 60, "duration": 60, "model": "x"},
        },
    )
    ctx = _context(3, _tiers(), availability=AvailabilityConfig(model="fedscale", file=trace))
    availability = build_profiles(ctx).availability
    devices = np.array([0, 0, 0, 1, 1, 2])  # devices 0, 2: client 7; device 1: client 9
    times = np.array([40.0, 75.0, 340.0, 15.0, 75.0, 150.0])
    assert availability.online(devices, times).tolist() == [True, False, True, True, True, True]
    assert availability.online_until(devices, times).tolist() == [50, 75, 350, 20, 80, 200]
    assert availability.online_from(np.array([0]), 250.0).tolist() == [300.0]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_the_restricted_unpickler_refuses_code(tmp_path, protocol):
    path = tmp_path / "client_device_capacity"
    evil = {1: {"computation": 1.0, "communication": _Evil()}}
    path.write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(ConfigError) as err:
        load_plain(path, "fleet.systems.fedscale_capacity")
    line = err.value.one_line()
    assert line.startswith("fleet.systems.fedscale_capacity: client_device_capacity is refused")
    assert "system" in line and "\n" not in line
    # plain data of every builtin kind still reads
    plain = tmp_path / "plain"
    value = {1: [1, 2.5, "x", (True, None)], 2: {3, 4}, 3: frozenset({5})}
    plain.write_bytes(pickle.dumps(value, protocol=2))
    assert load_plain(plain, "k") == value


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not a pickle at all", "is not a readable pickle"),
        (pickle.dumps({1: {"computation": 0.0, "communication": 1.0}}), "expected > 0"),
        (pickle.dumps({1: {"computation": 1.0}}), "lacks computation or communication"),
        (pickle.dumps([1, 2]), "non-empty dict keyed by client id"),
        (pickle.dumps({1: {"computation": "1", "communication": 1.0}}), "expected a finite"),
    ],
)
def test_bad_fedscale_files_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "cap"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_capacity(path, "fleet.systems.fedscale_capacity")
    assert needle in err.value.one_line()
