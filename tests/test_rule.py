"""The centralised RULE experiment end to end on tiny data, and retrain-free `fedrule search`."""

import csv
import json

import numpy as np
import pytest
import yaml

from fedrule.cli import main
from fedrule.engine.rule import equal_memory_dim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rule_run(tmp_path_factory):
    from fedrule.report.run import run_scenario
    from fedrule.scenario import scenario_from_dict

    raw = {
        "name": "rule",
        "data": {
            "source": "synthetic",
            "synthetic": {"users": 150, "items": 80, "interactions_per_user": 15},
        },
        "model": {"dim": 16, "blocks": 8, "groups": 4},
        "train": {"epochs": 3, "batch_size": 256, "lr": 0.02, "eval_every": 1},
        "eval": {"ks": [10, 20], "metric": "ndcg@20"},
        "estimator": {"configs": 24, "epochs": 20},
        "search": {"budgets": ["1/4", "1/2"], "compare": ["uniform", "greedy"], "cycles": 10},
        "references": {"plain": True, "retrained": True},
    }
    return run_scenario(scenario_from_dict(raw), tmp_path_factory.mktemp("runs"))


def test_rule_table_has_every_method_and_budget(rule_run):
    with open(rule_run / "rule.csv") as fh:
        rows = list(csv.DictReader(fh))
    methods = {(r["method"], r["searcher"], r["budget"]) for r in rows}
    for budget in ("1/4", "1/2"):
        for searcher in ("evolution", "uniform", "greedy"):
            assert ("rule", searcher, budget) in methods
        assert ("plain+search", "evolution", budget) in methods
        assert ("retrained", "", budget) in methods
    assert ("plain-full", "", "full") in methods
    for row in rows:
        assert int(float(row["bytes"])) <= int(float(row["budget_bytes"]))
        assert 0 <= float(row["ndcg@20"]) <= 1
    assert (rule_run / "quality_vs_memory.png").stat().st_size > 1000
    metrics = json.loads((rule_run / "metrics.json").read_text())
    assert metrics["seeds"]["0"]["estimator"]["n_configs"] == 24


def test_each_users_test_metric_is_saved_for_paired_comparisons(rule_run):
    with open(rule_run / "rule.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["searcher"] == "evolution"]
    with open(rule_run / "users-seed0.csv") as fh:
        users = list(csv.DictReader(fh))
    assert len(users) == 150 and users[0]["user_id"]
    assert len(rows) == 4  # rule and plain+search at two budgets
    for row in rows:
        column = f"{row['method']} ndcg@20 {int(float(row['budget_bytes']))}"
        values = [float(u[column]) for u in users if u[column] != ""]
        assert np.mean(values) == pytest.approx(float(row["ndcg@20"]), rel=1e-4)


def test_search_is_retrain_free_and_verifies(rule_run, capsys):
    assert main(["search", str(rule_run), "-b", "1/4", "-b", "3KiB", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "1/4" in out and "3KiB" in out and "test" in out
    scenario = yaml.safe_load((rule_run / "scenario.yaml").read_text())
    assert scenario["search"]["budgets"] == ["1/4", "1/2"]


def test_search_below_the_minimum_is_one_line(rule_run, capsys):
    assert main(["search", str(rule_run), "-b", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "below the smallest configuration" in err


def test_search_needs_a_run_folder(tmp_path, capsys):
    assert main(["search", str(tmp_path), "-b", "1/4"]) == 2
    assert "not a fedrule run folder" in capsys.readouterr().err


def test_equal_memory_dimension():
    # 100 items, float32: 16-byte header + 100 * d * 4 <= budget
    assert equal_memory_dim(16 + 100 * 4 * 7, 100, 4) == 7
    assert equal_memory_dim(16 + 100 * 4 * 7 - 1, 100, 4) == 6
