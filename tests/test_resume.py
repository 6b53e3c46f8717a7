"""Checkpoint and resume: a run killed with SIGKILL (or stopped with SIGTERM) and resumed ends
with the same results, bit for bit, as an uninterrupted run; finished seeds are kept. The kills
are injected at named steps (``FEDRULE_KILL_AT``, ``fedrule.killpoints``), not timed; the kill
at every step is tests/test_kill_resume.py."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fedrule.cli import main
from fedrule.engine.checkpoint import load_checkpoint
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow


def _raw() -> dict:
    raw = fleet_scenario(
        engine__transport="inprocess",
        federated__rounds=12,
        federated__eval_every=4,
        federated__mode="budgeted",
        federated__refit_every=5,
        federated__server_optimizer="fedadam",
        federated__server_lr=0.05,
    )
    raw["seeds"] = [0, 1]
    raw["data"]["synthetic"] = {"users": 120, "items": 150, "interactions_per_user": 25}
    return raw


def _start(raw: dict, tmp_path: Path, kill_at: str) -> tuple[subprocess.Popen, Path]:
    """``python -m fedrule run`` that signals itself at ``kill_at``."""
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "killed"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    env["FEDRULE_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "fedrule", "run", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    return proc, out


def _same_results(a: Path, b: Path) -> None:
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert ma["test"] == mb["test"]
    for seed in ("0", "1"):
        losses = [r["loss"] for r in ma["seeds"][seed]["rounds"]]
        assert losses == [r["loss"] for r in mb["seeds"][seed]["rounds"]]
        model = f"model-seed{seed}.pt"
        assert _sha256(a / model) == _sha256(b / model)  # issue item 8: the bytes, not tensors
        for name in (f"devices-seed{seed}.csv", f"coverage-seed{seed}.csv"):
            assert (a / name).read_text() == (b / name).read_text()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_run_resumes_to_the_same_results(tmp_path):
    raw = _raw()
    reference = run_scenario(scenario_from_dict(raw), tmp_path / "reference")
    # seed 0's 12 checkpoints, then seed 1's third round's
    proc, out = _start(raw, tmp_path, "round checkpoint:15")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, stderr
    (partial,) = out.glob(".*.partial")
    assert (partial / "checkpoint" / "seed0.json").is_file()
    assert load_checkpoint(partial / "checkpoint", 1).state.round == 3
    assert main(["run", "--resume", str(partial), "--quiet"]) == 0
    (resumed,) = out.glob("fleet-*")
    assert not list(out.glob(".*.partial")) and not (resumed / "checkpoint").exists()
    log = (resumed / "log.txt").read_text()
    assert "seed 0: kept from the interrupted run" in log and "resumed after round 3" in log
    _same_results(reference, resumed)


def test_sigterm_stops_cleanly_and_keeps_a_resumable_run(tmp_path):
    proc, out = _start(_raw(), tmp_path, "round checkpoint:3:TERM")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 143
    assert "Traceback" not in stderr
    assert "fedrule run --resume" in stderr
    (partial,) = out.glob(".*.partial")
    assert load_checkpoint(partial / "checkpoint", 0).state.round == 3


# ---------------------------------------------------------------------- the last round's checkpoint
def _seed_twice(tmp_path: Path, **patch) -> tuple[object, object]:
    """One seed run to its end with checkpoints (the last one stays), then run again: the
    second run resumes from that checkpoint."""
    raw = fleet_scenario(engine__transport="inprocess", **patch)
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, scenario.seeds[0])
    whole = run_federated_seed(scenario, split, 0, Silent(), checkpoint_dir=tmp_path)
    resumed = run_federated_seed(scenario, split, 0, Silent(), checkpoint_dir=tmp_path)
    return whole, resumed


def _assert_same_seed(whole: object, resumed: object) -> None:
    np.testing.assert_array_equal(resumed.results.table, whole.results.table)
    np.testing.assert_array_equal(
        resumed.results.devices["metrics"], whole.results.devices["metrics"]
    )
    untimed = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.results.rounds]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.results.rounds] == (
        untimed
    )
    assert resumed.results.best_round == whole.results.best_round
    assert resumed.extra["checkpoints"] == whole.extra["checkpoints"]


def test_a_run_resumed_from_its_last_rounds_checkpoint_trains_nothing_and_ends_the_same(tmp_path):
    """Issue item 1: with validation rounds (``eval_every``), a checkpoint of the last round
    left nothing to train, and the resume failed (``metric`` unbound)."""
    whole, resumed = _seed_twice(tmp_path, federated__rounds=3, federated__eval_every=1)
    assert resumed.resumed_after_round == 3 and len(resumed.results.rounds) == 3
    _assert_same_seed(whole, resumed)


def test_a_run_resumed_after_its_early_stop_trains_no_further_round(tmp_path):
    """Issue item 2: resumed after ``federated.patience`` stopped it, a run trained one round
    more than the uninterrupted run and ended with other figures."""
    whole, resumed = _seed_twice(
        tmp_path, federated__rounds=8, federated__eval_every=1, federated__patience=1
    )
    stopped_after = len(whole.results.rounds)
    assert stopped_after < 8  # it did stop early
    checkpoint = load_checkpoint(tmp_path, 0)
    assert checkpoint.state.round == stopped_after and checkpoint.state.stopped
    assert resumed.resumed_after_round == stopped_after
    assert len(resumed.results.rounds) == stopped_after
    _assert_same_seed(whole, resumed)


def test_a_resumed_runs_model_file_is_byte_identical(tmp_path):
    """Issue item 8: the model file stores the resolved scenario; read back from scenario.yaml
    (as a resume does), its pickled bytes must not change."""
    from fedrule.report.run import _scenario_record
    from fedrule.scenario import dump_scenario, load_scenario

    scenario = scenario_from_dict(fleet_scenario())
    (tmp_path / "scenario.yaml").write_text(dump_scenario(scenario))
    again = load_scenario(tmp_path / "scenario.yaml", [])
    digests = []
    for folder, loaded in (("a", scenario), ("b", again)):
        (tmp_path / folder).mkdir()
        torch.save({"scenario": _scenario_record(loaded)}, tmp_path / folder / "model.pt")
        digests.append(_sha256(tmp_path / folder / "model.pt"))
    assert digests[0] == digests[1]
