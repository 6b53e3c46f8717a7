"""Real Flower + Ray fleet runs on tiny synthetic data (slow: each run starts Ray)."""

import json

import numpy as np
import pytest

from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def _devices(folder):
    import csv

    with open(folder / "devices-seed0.csv") as fh:
        return list(csv.DictReader(fh))


def test_flower_and_inprocess_transports_give_identical_results(tmp_path):
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent

    outcomes = {}
    for transport in ("flower", "inprocess"):
        scenario = scenario_from_dict(fleet_scenario(engine__transport=transport))
        split = prepare_split(scenario.data, 0)
        outcomes[transport] = run_federated_seed(scenario, split, 0, Silent()).results
    a, b = outcomes["flower"], outcomes["inprocess"]
    np.testing.assert_array_equal(a.table, b.table)
    np.testing.assert_array_equal(a.devices["metrics"], b.devices["metrics"])
    np.testing.assert_array_equal(a.devices["bytes_received"], b.devices["bytes_received"])
    assert a.rounds[-1]["loss"] == b.rounds[-1]["loss"]
    assert a.label_report["holdout_spearman"] == b.label_report["holdout_spearman"]


def test_the_same_seed_gives_the_same_numbers(tmp_path):
    first = run_scenario(scenario_from_dict(fleet_scenario()), tmp_path)
    again = run_scenario(scenario_from_dict(fleet_scenario()), tmp_path)
    assert _metrics(again)["test"] == _metrics(first)["test"]
    assert _devices(again) == _devices(first)


def test_every_payload_fits_and_devices_report(tmp_path, capsys):
    import yaml

    from fedrule.cli import main

    raw = fleet_scenario(federated__mode="budgeted", federated__refit_every=1)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    assert "test metrics per device tier" in capsys.readouterr().out
    (folder,) = (tmp_path / "runs").iterdir()
    rows = _devices(folder)
    assert len(rows) == 48
    assert all(r["accepted"] == "True" and r["answered"] == "True" for r in rows)
    assert all(int(r["bytes_received"]) <= int(r["budget_bytes"]) for r in rows)
    tiers = {r["tier"]: r for r in _metrics(folder)["tiers"]}
    assert tiers["small"]["refused"] == 0 and tiers["large"]["refused"] == 0
    assert (folder / "tiers.csv").is_file() and (folder / "rounds-seed0.csv").is_file()
    assert main(["search", str(folder), "-b", "0.5", "--searcher", "greedy"]) == 0  # retrain-free
    assert (
        main(["search", str(folder), "-b", "0.5", "--verify"]) == 2
    )  # user vectors stay on devices
    assert "federated run leaves on the devices" in capsys.readouterr().err
    table_bytes = 60 * 8 * 4  # budgeted devices never download the whole table
    for record in _metrics(folder)["seeds"]["0"]["rounds"]:
        assert 0 < record["bytes_down"] < record["trained"] * table_bytes


def test_unavailable_and_failing_devices_do_not_stop_rounds(tmp_path):
    raw = fleet_scenario()
    raw["fleet"]["failure_rate"] = 0.3
    raw["fleet"]["tiers"][0]["availability"] = 0.5
    raw["federated"]["devices_per_round"] = 1.0
    folder = run_scenario(scenario_from_dict(raw), tmp_path)
    rounds = _metrics(folder)["seeds"]["0"]["rounds"]
    assert all(r["sampled"] == 48 for r in rounds)
    assert sum(r["unavailable"] for r in rounds) > 0
    assert sum(r["failed"] for r in rounds) > 0
    assert all(r["trained"] + r["unavailable"] + r["failed"] == 48 for r in rounds)
    assert all(r["trained"] > 0 for r in rounds)


def test_over_budget_payload_is_refused_and_counted(tmp_path, monkeypatch):
    from fedrule.search import customize
    from fedrule.search.base import SearchResult

    def oversized(layout, budget_bytes, estimator, cfg, seed, searcher=None, starts=None):
        config = layout.full_config()  # a server bug: ignores the budget
        return SearchResult(config, layout.memory_bytes(config), 0.0, 1, 0.0, "bug")

    monkeypatch.setattr(customize, "search", oversized)
    raw = fleet_scenario(search__verify=False)  # verification would mend the bug
    folder = run_scenario(scenario_from_dict(raw), tmp_path)
    rows = _devices(folder)
    refused = [r for r in rows if r["accepted"] == "False"]
    assert refused and all(int(r["bytes_received"]) > int(r["budget_bytes"]) for r in refused)
    assert all(np.isnan(float(r["ndcg@10"] or "nan")) for r in refused)
    tiers = {r["tier"]: r for r in _metrics(folder)["tiers"]}
    assert tiers["small"]["refused"] == 24 and tiers["large"]["refused"] == 24
    verified = run_scenario(scenario_from_dict(fleet_scenario()), tmp_path / "verified")
    assert all(r["accepted"] == "True" for r in _devices(verified))  # search.verify: fits only


def test_sigterm_under_ray_exits_143_and_leaves_no_process(tmp_path):
    """SIGTERM while Flower's engine runs on Ray: exit 143, no traceback, and no process of the
    run's session (Ray's raylet, GCS, workers) is alive 5 s after exit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    raw = fleet_scenario(federated__rounds=200)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    cmd = [sys.executable, "-m", "fedrule", "run", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not list(out.glob(".*.partial/checkpoint/current.pt")):  # rounds are running on Ray
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    time.sleep(5)
    table = subprocess.run(["ps", "-eo", "pid,sid,stat,args"], capture_output=True, text=True)
    rows = [line.split(maxsplit=3) for line in table.stdout.splitlines()[1:]]
    alive = [r for r in rows if r[1] == str(proc.pid) and not r[2].startswith("Z")]  # Z: dead
    assert not alive, alive
