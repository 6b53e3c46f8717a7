"""``fedrule report``: plots and tables from a tiny finished federated run."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from fedrule.cli import main
from fedrule.report.run import run_scenario
from fedrule.report.runs import find_runs, load_groups
from fedrule.report.tables import markdown_table
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

PLOTS = ("quality_vs_memory", "tiers", "curves", "traffic", "estimator", "privacy", "audit")


@pytest.mark.slow
def test_report_writes_every_plot_and_table_from_a_tiny_private_run(tmp_path, capsys):
    raw = fleet_scenario()
    raw["engine"]["transport"] = "inprocess"
    raw["federated"]["eval_every"] = 1
    raw["privacy"] = {"clip": 1.0, "noise_multiplier": 0.8, "audit": True}
    raw["engine"]["devices_per_node"] = 1  # the audit's per-device figures
    run = run_scenario(scenario_from_dict(raw), tmp_path / "runs")
    estimator = json.loads((run / "metrics.json").read_text())["seeds"]["0"]["estimator"]
    assert len(estimator["holdout_predicted"]) == len(estimator["holdout_true"]) > 0

    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in PLOTS:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 10_000, name
    rows = list(csv.DictReader((out / "summary.csv").open()))
    tiers = list(csv.DictReader((run / "tiers.csv").open()))
    assert [r["tier"] for r in rows] == [r["tier"] for r in tiers]
    for mine, theirs in zip(rows, tiers, strict=True):
        assert float(mine["ndcg@10"]) == pytest.approx(float(theirs["ndcg@10"]), rel=1e-4)
    assert float(rows[-1]["epsilon"]) > 0
    index = (out / "report.md").read_text()
    assert all(f"![{name}.png]" in index for name in PLOTS)
    assert "| group |" in (out / "summary.md").read_text()
    (audit,) = csv.DictReader((out / "audit.csv").open())
    assert float(audit["strongest_auc"]) > 0.8  # DP noise is added after the server's view
    assert 0 < float(audit["test_rank_exact"]) <= 1 and float(audit["test_bucket"]) == 1
    assert (out / "quality_vs_memory.csv").is_file()
    # a folder of runs is read like a sweep folder
    assert [g.runs for g in load_groups(find_runs([tmp_path / "runs"]))] == [[run]]


def test_report_of_a_folder_without_runs_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "holds no finished run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_groups_are_labelled_by_the_keys_in_which_they_differ(tmp_path):
    for i, (dim, seed) in enumerate([(8, 0), (8, 1), (16, 0)]):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        scenario = {"name": f"x-s{seed}", "seeds": [seed], "model": {"dim": dim, "blocks": 4}}
        (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        test = {"ndcg@10": {"mean": 0.1 + i, "std": 0.0}}
        metrics = {"engine": "centralized", "seeds": {str(seed): {"test": {"ndcg@10": 0.1 + i}}}}
        (folder / "metrics.json").write_text(json.dumps(metrics | {"test": test}))
    groups = load_groups(find_runs([tmp_path]))
    assert [(g.label, len(g.seeds)) for g in groups] == [("dim=8", 2), ("dim=16", 1)]
    table = markdown_table([{"a": 0.5, "a_std": 0.1, "b": "x"}], ["a", "a_std", "b"])
    assert table.splitlines()[-1] == "| 0.5 ± 0.1 | x |"


def test_many_differing_keys_label_each_group_by_its_departures(tmp_path):
    variants = [
        {},
        {"decoys": 4},
        {"dense": True},
        {"clip": 0.5, "target_epsilon": 8},
        {"clip": 0.5, "dense": True, "local_noise_multiplier": 4},
    ]
    for i, changed in enumerate(variants):
        folder = tmp_path / "sweep" / f"cell{i}-s0"
        folder.mkdir(parents=True)
        privacy = {"decoys": 0, "dense": False, "clip": 0, "target_epsilon": None}
        privacy |= {"local_noise_multiplier": 0} | changed
        scenario = {"name": f"cell{i}-s0", "seeds": [0], "privacy": privacy}
        (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        metrics = {"engine": "centralized", "seeds": {"0": {"test": {"ndcg@10": 0.1}}}}
        (folder / "metrics.json").write_text(json.dumps(metrics | {"test": {}}))
    (tmp_path / "sweep" / "sweep.json").write_text("{}")  # runs inside a sweep folder
    labels = [g.label for g in load_groups(find_runs([tmp_path]))]
    assert labels == [
        "the most common settings",
        "decoys=4",
        "dense=True",
        "clip=0.5, target_epsilon=8",
        "clip=0.5, dense=True, local_noise_multiplier=4",
    ]


def test_tradeoff_plot_follows_the_tail_weight(tmp_path):
    """Two budgets, three tail weights: one line per budget through its (tail, overall) points
    in order of the weight; groups that share a tail weight make no plot."""
    from fedrule.report.group_tables import tradeoff_rows
    from fedrule.report.plots import plot_tradeoff
    from fedrule.report.runs import Group, Seed

    def group(weight: float, overall: float, tail: float) -> Group:
        rows = [
            {
                "method": "rule",
                "searcher": "evolution",
                "budget": b,
                "bytes": 100.0 * (i + 1),
                "ndcg@20": overall + i,
                "tail/ndcg@20": tail + i,
            }
            for i, b in enumerate(("1/16", "1/4"))
        ]
        rows.append({"method": "plain", "searcher": "evolution", "budget": "1/16", "bytes": 1.0})
        scenario = {"search": {"tail_weight": weight}, "eval": {"metric": "ndcg@20"}}
        return Group(f"w={weight}", scenario, seeds=[Seed(0, "centralized", rows=rows)])

    groups = [group(0.5, 0.04, 0.002), group(0.0, 0.05, 0.001), group(1.0, 0.03, 0.004)]
    rows = tradeoff_rows(groups)
    assert [(r["tail_weight"], r["point"]) for r in rows] == [
        (0.0, "1/16"),
        (0.0, "1/4"),
        (0.5, "1/16"),
        (0.5, "1/4"),
        (1.0, "1/16"),
        (1.0, "1/4"),
    ]
    assert [r["ndcg@20"] for r in rows if r["point"] == "1/16"] == [0.05, 0.04, 0.03]
    assert plot_tradeoff(rows, "ndcg@20", tmp_path / "t.png").stat().st_size > 0
    assert tradeoff_rows([group(0.5, 0.04, 0.002), group(0.5, 0.03, 0.001)]) == []
