"""Checkpoint and resume: a run killed with SIGKILL (or stopped with SIGTERM) and resumed ends
with the same results, bit for bit, as an uninterrupted run; finished seeds are kept."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fedrule.cli import main
from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow


def _raw() -> dict:
    raw = fleet_scenario(
        engine__transport="inprocess",
        federated__rounds=40,
        federated__eval_every=4,
        federated__mode="budgeted",
        federated__refit_every=10,
        federated__server_optimizer="fedadam",
        federated__server_lr=0.05,
    )
    raw["seeds"] = [0, 1]
    raw["data"]["synthetic"] = {"users": 120, "items": 150, "interactions_per_user": 25}
    return raw


def _start(raw: dict, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "killed"
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    cmd = [sys.executable, "-m", "fedrule", "run", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    return proc, out


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, seed_done: int | None) -> Path:
    """The partial folder, once it holds a checkpoint past round 3 (and seed_done finished)."""
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        for partial in out.glob(".*.partial"):
            ckpt = partial / "checkpoint"
            if seed_done is not None and not (ckpt / f"seed{seed_done}.json").is_file():
                continue
            try:
                state = torch.load(ckpt / "current.pt", weights_only=True)["state"]
            except (FileNotFoundError, RuntimeError, EOFError):
                continue
            if state["round"] >= 3:
                return partial
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared")


def _same_results(a: Path, b: Path) -> None:
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert ma["test"] == mb["test"]
    for seed in ("0", "1"):
        losses = [r["loss"] for r in ma["seeds"][seed]["rounds"]]
        assert losses == [r["loss"] for r in mb["seeds"][seed]["rounds"]]
        ta = torch.load(a / f"model-seed{seed}.pt", weights_only=True)["item"]
        tb = torch.load(b / f"model-seed{seed}.pt", weights_only=True)["item"]
        assert torch.equal(ta, tb)
        for name in (f"devices-seed{seed}.csv", f"coverage-seed{seed}.csv"):
            assert (a / name).read_text() == (b / name).read_text()


def test_killed_run_resumes_to_the_same_results(tmp_path):
    raw = _raw()
    reference = run_scenario(scenario_from_dict(raw), tmp_path / "reference")
    proc, out = _start(raw, tmp_path)
    partial = _wait_for_checkpoint(out, proc, seed_done=0)  # seed 0 done, seed 1 under way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(["run", "--resume", str(partial), "--quiet"]) == 0
    (resumed,) = out.glob("fleet-*")
    assert not list(out.glob(".*.partial")) and not (resumed / "checkpoint").exists()
    log = (resumed / "log.txt").read_text()
    assert "seed 0: kept from the interrupted run" in log and "resumed after round" in log
    _same_results(reference, resumed)


def test_sigterm_stops_cleanly_and_keeps_a_resumable_run(tmp_path):
    proc, out = _start(_raw(), tmp_path)
    partial = _wait_for_checkpoint(out, proc, seed_done=None)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "Traceback" not in stderr
    assert "fedrule run --resume" in stderr
    assert partial.is_dir() and (partial / "checkpoint" / "current.pt").is_file()
