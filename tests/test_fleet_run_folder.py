"""What a federated run folder and the console show: the every-device headline across tiers,
per-tier notes, and no duplicate recall columns under leave-one-out."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest
import yaml

from fedrule.cli import main
from tests.fleets import fleet_scenario


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    """``fedrule run`` of a tiny fleet (in process) whose large tier's budget is four times the
    whole table: its configuration is far below its budget, which the console and tiers.csv
    say. Returns the run folder and what the command printed."""
    tmp_path = tmp_path_factory.mktemp("fleet")
    raw = fleet_scenario(
        engine__transport="inprocess", eval__every_device=True, federated__eval_every=1
    )
    raw["fleet"]["tiers"][1]["budget"] = "8KiB"  # the full table is about 2 KiB
    del raw["engine"]["kind"]  # a fleet file: federated without saying so
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    return folder, printed.getvalue()


@pytest.mark.slow
def test_a_fleet_run_shows_and_records_what_its_tiers_compare(fleet_run):
    from fedrule.cli import out

    folder, printed = fleet_run
    tiers = {r["tier"]: r for r in csv.DictReader((folder / "tiers.csv").open())}
    # the console: the every-device figure first, whole, within the console's width
    assert "every device" in printed and "…" not in printed
    assert max(len(line) for line in printed.splitlines()) <= out.width
    for name in ("small", "large"):
        assert f"{float(tiers[name]['ndcg@10_every_device']):.4f}" in printed
    assert "different users" in printed and "predicted (valid)" in printed
    # the large tier's configuration is far below its budget: said where and why
    assert "of its 8.0 KiB budget" in tiers["large"]["note"]
    assert "search.verify" in tiers["large"]["note"] and tiers["small"]["note"] == ""
    assert "large: " in printed and "of its 8.0 KiB budget" in printed


@pytest.mark.slow
def test_leave_one_out_records_hit_and_not_the_same_recall(fleet_run):
    folder, _ = fleet_run
    columns = next(csv.reader((folder / "tiers.csv").open()))
    assert "hit@10" in columns and "tail/hit@10" in columns and "ndcg@10" in columns
    assert not [c for c in columns if "recall@" in c]
    devices = next(csv.reader((folder / "devices-seed0.csv").open()))
    assert "hit@5" in devices and not [c for c in devices if "recall@" in c]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "hit@10" in metrics["test"] and not [k for k in metrics["test"] if "recall@" in k]
    for search in metrics["seeds"]["0"]["searches"].values():
        assert "hit@10" in search["every_device"]
        assert not [k for k in search["every_device"] if "recall@" in k]
    results = (folder / "results.csv").read_text()
    assert "hit@10" in results and "recall@" not in results


@pytest.mark.parametrize(
    ("split", "recall"),
    [({"split": "loo"}, False), ({"split": "ratio", "ratios": [0.6, 0.1, 0.3]}, True)],
)
def test_recall_is_kept_where_users_have_several_test_items(tmp_path, tiny_scenario, split, recall):
    """A ratio split with 30% test items gives users several: recall@K is then its own figure."""
    from fedrule.report.run import run_scenario
    from fedrule.scenario import scenario_from_dict

    tiny_scenario["data"] |= split
    scenario = scenario_from_dict(tiny_scenario, ["train.epochs=1"])
    metrics = json.loads((run_scenario(scenario, tmp_path) / "metrics.json").read_text())
    test = metrics["test"]
    assert ("recall@10" in test) is recall and "hit@10" in test
    if recall:
        assert test["recall@10"]["mean"] < test["hit@10"]["mean"]
