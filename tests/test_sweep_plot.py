"""``summary.png`` of a sweep: the metric against each swept key, from hand-made run folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from fedrule.sweeps import SweepPlan, parse_grid, summarize_sweep
from fedrule.sweeps.plot import PLOT, axis_points, plotted_axes


def _sweep(tmp_path: Path, grid: list[str], seeds: tuple[int, ...], value) -> SweepPlan:
    """A sweep folder whose runs hold a two-tier fleet's figures: ``value(settings, tier,
    seed)`` is the tier's ndcg@10."""
    scenario = tmp_path / "base.yaml"
    scenario.write_text(yaml.safe_dump({"eval": {"ks": [10], "metric": "ndcg@10"}}))
    plan = SweepPlan(scenario, (), parse_grid(grid), seeds)
    for run in plan.runs():
        folder = tmp_path / run.name
        folder.mkdir()
        settings = dict(run.values)
        tiers = [
            {"tier": t, "devices": 4, "budget_bytes": b, "ndcg@10": value(settings, t, run.seed)}
            for t, b in (("small", 100), ("large", 400), ("all", "100..400"))
        ]
        test = {"ndcg@10": {"mean": tiers[-1]["ndcg@10"], "std": 0.0}}
        metrics = {"engine": "federated", "tiers": tiers, "test": test, "seeds": {}}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return plan


def test_one_plain_key_gets_a_line_per_tier_with_the_seeds_mean_and_spread(tmp_path):
    def value(settings, tier, seed):
        negatives = int(settings["train.negatives"])
        return {"small": 0.1, "large": 0.2, "all": 0.15}[tier] * negatives + 0.02 * seed

    plan = _sweep(tmp_path, ["train.negatives=2,1"], (0, 1), value)
    rows = summarize_sweep(tmp_path, plan)
    (axis,) = plotted_axes(plan)
    lines = axis_points(rows, plan, axis, "ndcg@10")
    assert list(lines) == ["small", "large", "all"]
    (two, one) = lines["large"]  # in the grid's order; the plot sorts numbers
    assert two[0] == "2" and two[1] == pytest.approx(0.41)  # (0.4 + 0.42) / 2
    assert one[0] == "1" and one[1] == pytest.approx(0.21)
    assert one[2] == pytest.approx(math.sqrt(2) * 0.01)  # spread of 0.20 and 0.22
    png = tmp_path / PLOT
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_two_keys_get_a_panel_each_with_a_line_per_value_of_the_other(tmp_path):
    def value(settings, tier, seed):
        return float(settings["model.dim"]) / 100 + (
            0.05 if settings["federated.mode"] == "budgeted" else 0
        )

    plan = _sweep(tmp_path, ["model.dim=8,16", "federated.mode=full,budgeted"], (0,), value)
    rows = summarize_sweep(tmp_path, plan)
    dim, mode = plotted_axes(plan)
    by_dim = axis_points(rows, plan, dim, "ndcg@10")
    assert list(by_dim) == ["mode=full", "mode=budgeted"]
    assert [p[:2] for p in by_dim["mode=budgeted"]] == [("8", 0.13), ("16", pytest.approx(0.21))]
    by_mode = axis_points(rows, plan, mode, "ndcg@10")
    assert [p[:2] for p in by_mode["dim=16"]] == [
        ("full", 0.16),
        ("budgeted", pytest.approx(0.21)),
    ]
    assert (tmp_path / PLOT).is_file()


def test_mappings_and_single_values_get_no_panel(tmp_path):
    plan = _sweep(
        tmp_path,
        ["privacy={audit: true, clip: 0.5, dense: true},{audit: true}", "model.dim=8"],
        (0,),
        lambda settings, tier, seed: 0.1,
    )
    assert plotted_axes(plan) == []
    assert summarize_sweep(tmp_path, plan)
    assert not (tmp_path / PLOT).exists()
