"""Per-user test metrics, and fleet tiers set against centralised RULE on the same devices."""

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.data.split import UserItems
from fedrule.model.evaluate import evaluate_ranking, evaluate_ranking_users
from fedrule.report.paired import paired_columns, paired_rows, reference_by_user
from fedrule.report.runs import Group, Seed


def items(rows: list[list[int]]) -> UserItems:
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return UserItems.from_coo(users, np.array([i for r in rows for i in r]), len(rows))


def test_user_values_hand_computed_and_their_mean_is_the_evaluation():
    # 3 users, 5 items scored 4, 3, 2, 1, 0 for every user (item 0 first).
    split = SimpleNamespace(
        n_users=3,
        train=items([[0], [], [1]]),
        valid=items([[1], [], []]),
        test=items([[2], [4], []]),
    )
    scores = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]).repeat(3, 1)

    def score(rows):
        return scores[rows]

    def per_user(key):
        _, values = evaluate_ranking_users(
            score, split, target="test", ks=[2, 5], item_is_head=None, key=key, batch_users=2
        )
        return values

    got = per_user("ndcg@2")
    # user 0: items 0 (train) and 1 (valid) excluded, item 2 ranks first: NDCG 1.
    # user 1: item 4 ranks fifth: outside the top 2. user 2: no test item.
    assert got[:2] == pytest.approx([1.0, 0.0]) and math.isnan(got[2])
    recall = per_user("recall@5")
    assert recall[:2] == pytest.approx([1.0, 1.0])
    ndcg5 = per_user("ndcg@5")
    assert ndcg5[1] == pytest.approx(1 / math.log2(6))  # rank 4 (0-based): 1 / log2(4 + 2)
    expected = evaluate_ranking(score, split, target="test", ks=[5], item_is_head=None)
    assert np.nanmean(ndcg5) == pytest.approx(expected.means()["ndcg@5"])


def fleet_group(devices_per_seed: list[list[dict]], every: list[dict] | None = None) -> Group:
    group = Group("fleet", {"engine": {"kind": "federated"}, "eval": {"metric": "ndcg@20"}})
    for index, devices in enumerate(devices_per_seed):
        seed = Seed(index, "federated", devices=devices)
        seed.tiers = {d["tier"]: {} for d in devices} | {"all": {}}
        seed.budgets = {d["tier"]: float(d["budget_bytes"]) for d in devices}
        for tier, value in (every[index] if every else {}).items():
            seed.tiers[tier]["ndcg@20_every_device"] = value
        group.seeds.append(seed)
    group.runs.append(Path("fleet"))
    return group


def central_group(per_seed: list[dict[str, dict[int, float]]]) -> Group:
    group = Group("central", {"eval": {"metric": "ndcg@20"}})
    for index, by_user in enumerate(per_seed):
        users = [
            {"user_id": u, **{f"rule ndcg@20 {b}": v for b, v in values.items()}}
            for u, values in by_user.items()
        ]
        group.seeds.append(Seed(index, "centralized", users=users))
    return group


def device(user, tier, budget, value, evaluated="True"):
    row = {"user_id": user, "tier": tier, "budget_bytes": budget, "ndcg@20": value}
    return row | {"evaluated": evaluated}


def test_tiers_are_set_against_the_reference_on_their_own_devices():
    central = central_group(
        [
            {"a": {10: 0.2, 20: 0.4}, "b": {10: 0.0, 20: 0.2}, "c": {10: 0.4, 20: 0.6}},
            {"a": {10: 0.4, 20: 0.4}, "b": {10: 0.0, 20: 0.2}, "c": {10: 0.4, 20: 0.6}},
        ]
    )
    assert reference_by_user(central)[10] == pytest.approx({"a": 0.3, "b": 0.0, "c": 0.4})
    seed0 = [device("a", "small", 10, 0.1), device("b", "small", 10, 0.2)]
    seed0.append(device("c", "big", 20, 0.3))
    # seed 1 draws other tiers; device c is not evaluated (no test item)
    seed1 = [device("a", "big", 20, 0.2), device("b", "small", 10, 0.1)]
    seed1.append(device("c", "small", 10, 0.9, evaluated="False"))
    fleet = fleet_group(
        [seed0, seed1],
        every=[{"small": 0.1, "big": 0.45}, {"small": 0.35, "big": 0.3}],
    )
    rows = {r["tier"]: r for r in paired_rows([fleet, central])}
    small, big, every = rows["small"], rows["big"], rows["all"]
    # small, seed 0: fleet (0.1 + 0.2) / 2 = 0.15 against (0.3 + 0.0) / 2 = 0.15: ratio 1;
    # seed 1: fleet 0.1 on b against 0.0: no ratio (NaN) -- only seed 0's counts.
    assert small["ndcg@20"] == pytest.approx((0.15 + 0.1) / 2)
    assert small["reference_ndcg@20"] == pytest.approx((0.15 + 0.0) / 2)
    assert small["ratio"] == pytest.approx(1.0) and small["budget_bytes"] == 10
    # big, seed 0: 0.3 against 0.6 on c; seed 1: 0.2 against 0.4 on a: 0.5 in both.
    assert big["ratio"] == pytest.approx(0.5) and big["ratio_std"] == pytest.approx(0.0)
    # every device: the tier's figure on every device against the reference's mean over all
    # users at its budget (10: (0.3 + 0 + 0.4) / 3, 20: (0.4 + 0.2 + 0.6) / 3).
    assert small["every_device_ratio"] == pytest.approx((0.1 / (0.7 / 3) + 0.35 / (0.7 / 3)) / 2)
    assert big["every_device_ratio"] == pytest.approx((0.45 / 0.4 + 0.3 / 0.4) / 2)
    # all: each device against its own budget; seed 0: 0.6 / 3 against (0.3 + 0 + 0.6) / 3
    assert every["ratio"] == pytest.approx((0.6 / 0.9 + 0.3 / 0.4) / 2)
    assert every["budget_bytes"] is None and every["seeds"] == 2
    assert set(paired_columns("ndcg@20")) >= set(small)


def test_a_tier_whose_budget_the_reference_lacks_is_left_out():
    central = central_group([{"a": {10: 0.2}, "b": {10: 0.1}}])
    fleet = fleet_group([[device("a", "small", 10, 0.1), device("b", "big", 20, 0.3)]])
    rows = paired_rows([fleet, central])
    assert [r["tier"] for r in rows] == ["small"]
    assert paired_rows([fleet]) == [] and paired_rows([central]) == []
    central.scenario["data"] = {"source": "ml-1m"}  # another split: nothing is paired
    assert paired_rows([fleet, central]) == []


@pytest.mark.slow
def test_report_pairs_a_real_fleet_with_centralised_rule_on_the_same_data(tmp_path):
    from fedrule.cli import main
    from fedrule.report.run import run_scenario
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    raw = fleet_scenario()
    raw["engine"]["transport"] = "inprocess"
    fleet_run = run_scenario(scenario_from_dict(raw), tmp_path / "runs")
    central = {k: v for k, v in fleet_scenario().items() if k not in ("fleet", "federated")}
    central |= {"name": "central", "engine": {"kind": "centralized"}}
    central["train"] |= {"epochs": 2, "batch_size": 64}
    central["search"] |= {"budgets": [0.4, 1], "compare": []}
    central["references"] = {"plain": False, "retrained": False}
    run_scenario(scenario_from_dict(central), tmp_path / "runs")
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    with open(out / "paired.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["tier"] for r in rows] == ["small", "large", "all"]
    with open(fleet_run / "tiers.csv") as fh:
        tiers = {r["tier"]: r for r in csv.DictReader(fh)}
    for row in rows:
        assert float(row["ndcg@10"]) == pytest.approx(float(tiers[row["tier"]]["ndcg@10"]))
        assert float(row["reference_ndcg@10"]) > 0 and float(row["ratio"]) > 0
    assert "same devices" in (out / "report.md").read_text()


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=12),
    scale=st.floats(0.1, 2.0),
    seeds=st.integers(1, 3),
    data=st.data(),
)
def test_a_fleet_scaling_the_reference_has_that_ratio_in_every_tier(values, scale, seeds, data):
    users = [f"u{i}" for i in range(len(values))]
    central = central_group([{u: {10: v, 20: 2 * v} for u, v in zip(users, values, strict=True)}])
    runs = []
    for _ in range(seeds):
        tiers = data.draw(
            st.lists(st.sampled_from(["s", "b"]), min_size=len(users), max_size=len(users))
        )
        runs.append(
            [
                device(u, t, 10 if t == "s" else 20, scale * v * (1 if t == "s" else 2))
                for u, v, t in zip(users, values, tiers, strict=True)
            ]
        )
    rows = paired_rows([fleet_group(runs), central])
    assert rows and rows[-1]["tier"] == "all"
    for row in rows:
        assert row["ratio"] == pytest.approx(scale) and row["ratio_std"] == pytest.approx(
            0, abs=1e-9
        )
