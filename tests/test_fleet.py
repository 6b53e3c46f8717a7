"""Fleets from tiers and traces, and their one-line errors."""

import numpy as np
import pytest

from fedrule.engine.federated import check_budgets
from fedrule.errors import BudgetError, ConfigError
from fedrule.fleet import Tier, assign_tiers, choose_users, fleet_from_tiers, fleet_from_trace
from fedrule.scenario import scenario_from_dict
from fedrule.units import parse_budget

USER_IDS = np.array(["u1", "u2", "u3", "u4"], dtype=object)


def test_tier_shares_are_exact_and_seeded():
    labels = assign_tiers(10, [Tier("a", 0.3, parse_budget(1)), Tier("b", 0.7, parse_budget(1))], 1)
    assert np.bincount(labels).tolist() == [3, 7]
    again = assign_tiers(10, [Tier("a", 0.3, parse_budget(1)), Tier("b", 0.7, parse_budget(1))], 1)
    assert labels.tolist() == again.tolist()


def test_budgets_resolve_against_the_full_table():
    tiers = [Tier("watch", 0.5, parse_budget("1/16")), Tier("tv", 0.5, parse_budget("4KiB"), 0.5)]
    fleet = fleet_from_tiers(np.arange(4), tiers, 16_000, 0.1, seed=0)
    assert sorted(set(fleet.budget_bytes.tolist())) == [1000, 4096]
    assert sorted(fleet.availability.tolist()) == [0.5, 0.5, 1.0, 1.0]
    assert fleet.failure_rate == 0.1


def test_sampled_devices_are_seeded_and_sorted():
    chosen = choose_users(np.arange(100), 10, seed=3)
    assert chosen.tolist() == sorted(chosen.tolist()) and len(set(chosen.tolist())) == 10
    assert chosen.tolist() == choose_users(np.arange(100), 10, seed=3).tolist()
    assert choose_users(np.arange(5), 0, seed=3).tolist() == [0, 1, 2, 3, 4]


def _trace(tmp_path, text):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def test_trace_rows(tmp_path):
    path = _trace(tmp_path, "device_id,budget,tier,availability\nu3,1/8,watch,0.9\nu1,2KiB,,\n")
    fleet = fleet_from_trace(path, USER_IDS, ["watch"], 8000, 0.0)
    assert fleet.user.tolist() == [0, 2]
    assert fleet.budget_bytes.tolist() == [2048, 1000]
    assert [fleet.tier_names[t] for t in fleet.tier] == ["trace", "watch"]
    assert fleet.availability.tolist() == [1.0, 0.9]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("device_id,budget,tier\nu1,1/8,fridge\n", "unknown tier 'fridge'"),
        ("device_id,budget\nu9,1/8\n", "device_id 'u9' is not a user"),
        ("device_id,budget\nu1,lots\n", "cannot read 'lots'"),
        ("device_id,budget,availability\nu1,1/8,1.5\n", "availability '1.5'"),
        ("device,budget\nu1,1/8\n", "no column 'device_id'"),
        ("device_id,budget\nu1,1/8\nu1,1/4\n", "device_id 'u1' is listed twice (lines 2 and 3)"),
    ],
)
def test_trace_errors_name_the_key_and_line(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        fleet_from_trace(_trace(tmp_path, text), USER_IDS, ["watch"], 8000, 0.0)
    assert info.value.one_line().startswith("fleet.trace")
    assert fragment in info.value.one_line()


def test_missing_trace_file(tmp_path):
    with pytest.raises(ConfigError, match="no such trace file"):
        fleet_from_trace(tmp_path / "none.csv", USER_IDS, None, 8000, 0.0)


def test_tier_shares_must_sum_to_one():
    raw = {"fleet": {"tiers": [{"name": "a", "share": 0.5, "budget": 1}]}}
    with pytest.raises(ConfigError, match="fleet.tiers: tier shares sum to 0.5"):
        scenario_from_dict(raw)
    with pytest.raises(ConfigError, match=r"fleet.tiers\[0\].budget"):
        scenario_from_dict({"fleet": {"tiers": [{"name": "a", "share": 1, "budget": "big"}]}})


def test_budget_below_the_minimum_names_the_tier():
    scenario = scenario_from_dict(
        {
            "model": {"dim": 8, "blocks": 4, "groups": 2},
            "fleet": {
                "tiers": [
                    {"name": "big", "share": 0.5, "budget": 1},
                    {"name": "tiny", "share": 0.5, "budget": "1/64"},
                ]
            },
        }
    )
    tiers = [Tier(t.name, t.share, t.budget) for t in scenario.fleet.tiers]
    fleet = fleet_from_tiers(np.arange(10), tiers, 100 * 8 * 4, 0.0, seed=0)
    with pytest.raises(BudgetError) as info:
        check_budgets(scenario, fleet, n_items=100)
    line = info.value.one_line()
    assert line.startswith("fleet.tiers[1].budget: budget of 50 bytes is below")
