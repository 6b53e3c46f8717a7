"""Rounds and seconds to 95% of the best validation (``speed.csv`` of ``fedrule report``)."""

import csv
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.report.compare import write_report
from fedrule.report.runs import Group, Seed
from fedrule.report.speed import first_reaching, speed_columns, speed_rows

ML = {"source": "ml-1m"}


def rounds(values: list[float | None], seconds: float = 2.0) -> list[dict]:
    """One record per round, each taking ``seconds``; None: a round not validated."""
    return [
        {"round": r + 1, "seconds": seconds} | ({} if v is None else {"valid_ndcg@20": v})
        for r, v in enumerate(values)
    ]


def group(label: str, curves: dict[int, list[dict]], data: dict = ML) -> Group:
    scenario = {"engine": {"kind": "federated"}, "eval": {"metric": "ndcg@20"}, "data": data}
    out = Group(label, scenario)
    out.seeds = [Seed(seed, "federated", rounds=r) for seed, r in curves.items()]
    return out


def by_label(rows: list[dict]) -> dict[str, dict]:
    return {row["group"]: row for row in rows}


def test_hand_computed_rounds_and_seconds_to_95_percent():
    # Validated every second round, 2 s per round (so round r ends at 2r seconds).
    # fast: 0.010, 0.096, 0.100 at rounds 2, 4, 6 -> best 0.100 (round 6); 95% of it is 0.095,
    #   first reached at round 4 (8 s), which is also 95% of the best of both groups.
    # slow: 0.050, 0.080, 0.090, 0.091 at rounds 2..8 -> 95% of its own best (0.08645) first at
    #   round 6 (12 s); 95% of the best of both (0.095) never.
    fast = group("fast", {0: rounds([None, 0.010, None, 0.096, None, 0.100])})
    slow = group("slow", {0: rounds([None, 0.050, None, 0.080, None, 0.090, None, 0.091])})
    rows = by_label(speed_rows([fast, slow]))
    assert rows["fast"]["best_valid_ndcg@20"] == pytest.approx(0.100)
    assert rows["fast"]["best_round"] == 6
    assert rows["fast"]["rounds_to_95_own"] == 4 and rows["fast"]["seconds_to_95_own"] == 8.0
    assert rows["fast"]["rounds_to_95_all"] == 4 and rows["fast"]["seconds_to_95_all"] == 8.0
    assert rows["fast"]["reached_all"] == "1/1"
    assert rows["slow"]["best_round"] == 8
    assert rows["slow"]["rounds_to_95_own"] == 6 and rows["slow"]["seconds_to_95_own"] == 12.0
    assert rows["slow"]["rounds_to_95_all"] is None and rows["slow"]["reached_all"] == "0/1"


def test_seeds_compare_with_the_same_seed_and_average_over_those_that_reach():
    # Seed 0: a peaks at 0.10, b at 0.06. Seed 1: a peaks at 0.05, b at 0.10 (round 2, 4 s).
    # b reaches 95% of seed 0's best (0.095) never, and seed 1's at round 2: 1 of 2 seeds.
    a = group("a", {0: rounds([0.10, 0.10]), 1: rounds([0.04, 0.05])})
    b = group("b", {0: rounds([0.06, 0.05]), 1: rounds([0.08, 0.10])})
    rows = by_label(speed_rows([a, b]))
    assert rows["b"]["reached_all"] == "1/2"
    assert rows["b"]["rounds_to_95_all"] == 2 and rows["b"]["seconds_to_95_all"] == 4.0
    assert rows["b"]["rounds_to_95_own"] == pytest.approx(1.5)  # rounds 1 and 2
    assert rows["b"]["rounds_to_95_own_std"] == pytest.approx(math.sqrt(0.5))
    assert rows["a"]["reached_all"] == "1/2"
    assert rows["a"]["best_valid_ndcg@20"] == pytest.approx(0.075)


def test_other_data_and_unvalidated_or_centralised_groups_are_not_compared():
    ml = group("ml", {0: rounds([0.05])})
    other = group("other", {0: rounds([0.50])}, data={"source": "ml-100k"})
    silent = group("silent", {0: rounds([None, None])})
    central = Group("central", {"eval": {"metric": "ndcg@20"}}, seeds=[Seed(0, "centralized")])
    fewer = group("fewer-labellers", {0: rounds([0.50])})
    fewer.scenario["estimator"] = {"label_users": 100}  # validates on other devices
    rows = by_label(speed_rows([ml, other, silent, central, fewer]))
    assert set(rows) == {"ml", "other", "fewer-labellers"}
    assert rows["ml"]["reached_all"] == "1/1" and rows["ml"]["rounds_to_95_all"] == 1


def test_first_reaching_returns_the_first_round_at_or_above_the_level():
    points = [(10, 5.0, 0.02), (20, 10.0, 0.05), (30, 15.0, 0.04), (40, 20.0, 0.06)]
    assert first_reaching(points, 0.05) == (20, 10.0)
    assert first_reaching(points, 0.06) == (40, 20.0)
    round_, seconds = first_reaching(points, 0.07)
    assert round_ == -1 and math.isnan(seconds)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=12),
    scale=st.floats(0.1, 10.0),
)
def test_own_target_is_reached_by_the_best_round_and_is_scale_free(values, scale):
    rows = speed_rows([group("g", {0: rounds(values)})])
    scaled = speed_rows([group("g", {0: rounds([v * scale for v in values])})])
    row = rows[0]
    assert 1 <= row["rounds_to_95_own"] <= row["best_round"]
    assert row["rounds_to_95_own"] == row["rounds_to_95_all"]  # the only group is the best
    assert row["seconds_to_95_own"] == pytest.approx(2.0 * row["rounds_to_95_own"])
    assert scaled[0]["rounds_to_95_own"] == row["rounds_to_95_own"]


def test_the_report_writes_the_speed_table(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    scenario = {"engine": {"kind": "federated"}, "eval": {"metric": "ndcg@20"}, "data": ML}
    (run / "scenario.yaml").write_text(json.dumps(scenario))
    (run / "metrics.json").write_text(json.dumps({"engine": "federated", "seeds": {"0": {}}}))
    with open(run / "rounds-seed0.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["round", "seconds", "valid_ndcg@20"])
        writer.writeheader()
        for r, v in enumerate([0.02, "", 0.04, 0.05], start=1):
            writer.writerow({"round": r, "seconds": 1.5, "valid_ndcg@20": v})
    out = tmp_path / "report"
    written = write_report([run], out)
    assert out / "speed.csv" in written and out / "speed.md" in written
    with open(out / "speed.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert list(row) == speed_columns("ndcg@20")
    assert row["best_round"] == "4" and row["rounds_to_95_own"] == "4"
    assert float(row["seconds_to_95_own"]) == pytest.approx(6.0)
    assert "## How fast validation rises" in (out / "report.md").read_text()
