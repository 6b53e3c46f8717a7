"""What a federated run folder and the console show: the every-device headline across tiers,
per-tier notes, no duplicate recall columns under leave-one-out, and the folder's plots."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest
import yaml

from fedrule.cli import main
from tests.fleets import fleet_scenario

PNG = b"\x89PNG\r\n\x1a\n"


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


@pytest.mark.slow
def test_a_fleet_run_folder_has_its_tier_plot_and_explains_a_missing_coverage_plot(fleet_run):
    folder, _ = fleet_run
    png = folder / "tiers.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert (folder / "convergence.png").read_bytes()[:8] == PNG
    assert (folder / "coverage-seed0.csv").is_file() and not (folder / "coverage.png").exists()
    assert "coverage.png not drawn: every block got 100%" in (folder / "log.txt").read_text()


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


def test_the_kept_round_is_found_on_the_validation_curve():
    from fedrule.report.convergence import kept_point, validation_points

    rounds = [{"round": r, "seconds": float(r)} for r in (1, 2, 3, 4)]
    rounds[1]["valid_ndcg@10"], rounds[3]["valid_ndcg@10"] = 0.3, 0.2
    points = validation_points(rounds, "valid_ndcg@10")
    assert kept_point(rounds, points, 2) == (2, 3.0, 0.3)  # validated: on the curve
    assert kept_point(rounds, points, 0) == (4, 10.0, 0.2)  # 0: the last round's table
    assert kept_point(rounds, points, 3) == (3, 6.0, None)  # not validated: a line at round 3


def test_a_uniform_coverage_map_is_not_drawn(tmp_path):
    from fedrule.report.coverage import plot_coverage

    def coverage(shares: list[float]) -> object:
        path = tmp_path / f"coverage-{len(list(tmp_path.iterdir()))}.csv"
        lines = ["group,block,share"] + [f"{i // 2},{i % 2},{s}" for i, s in enumerate(shares)]
        path.write_text("\n".join(lines) + "\n")
        return path

    full = coverage([1.0, 1.0, 1.0, 1.0])  # full mode: every block as trained as the best
    assert not plot_coverage([full], tmp_path / "full.png", "full")
    assert not (tmp_path / "full.png").exists()
    budgeted = coverage([1.0, 0.25, 1.0, 0.5])
    assert plot_coverage([budgeted], tmp_path / "budgeted.png", "budgeted")
    assert (tmp_path / "budgeted.png").read_bytes()[:8] == PNG
