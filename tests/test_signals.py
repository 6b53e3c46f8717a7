"""Signals at the edges of a federated run on Ray (issue 26), each sent when the run's own
files show the phase (Ray's session folder, a checkpoint, the 'stopping' line), not after a
sleep:

- SIGTERM during Ray's start-up: exit 143 with a message (it was 15, silent);
- two SIGTERMs: the second waits for the cleanup (it killed the process, silently, and left
  every device's data in the temporary folder);
- kill -9: the run's guard kills Ray's agents and removes the device store and Ray's folder
  at once (the agents lived on for a minute), and the partial resumes;
- every run removes the Ray ``session_*`` folder it made (about 100 piled up in an afternoon).

Each run puts Ray's temporary folder under a private ``$RAY_TMPDIR``, where Ray itself would
put ``ray/session_*`` too, so an empty ``$RAY_TMPDIR`` afterwards shows that nothing is left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from fedrule.lifeline import marked_processes
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow


class _Run:
    """``fedrule run`` of a small federated scenario on Flower and Ray, in a subprocess."""

    def __init__(self, tmp_path: Path, rounds: int = 30, resume: Path | None = None) -> None:
        self.tmp = tmp_path
        self.store = tmp_path / "store"
        self.out = tmp_path / "runs"
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="frt-", dir="/tmp"))  # short: Ray's sockets
        self.store.mkdir(exist_ok=True)
        raw = fleet_scenario(federated__rounds=rounds)
        raw["engine"] |= {"store_dir": str(self.store), "num_cpus": 2}
        scenario = tmp_path / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(raw))
        self.err_path = tmp_path / f"stderr-{time.monotonic_ns()}.txt"
        args = ["--resume", str(resume)] if resume else [str(scenario), "--out", str(self.out)]
        env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
        env["RAY_TMPDIR"] = str(self.ray_tmp)
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fedrule", "run", *args, "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, condition, what: str, seconds: float = 300.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.proc.poll() is None, f"the run ended before {what}: {self.stderr}"
            assert time.monotonic() < deadline, f"no {what}"
            time.sleep(0.01)

    def ray_folders(self) -> list[Path]:
        return sorted(self.ray_tmp.glob("fedrule-ray-*"))

    def sessions(self) -> list[Path]:
        return [p for f in self.ray_folders() for p in f.glob("session_2*")]

    def checkpoint(self) -> Path | None:
        found = list(self.out.glob(".*.partial/checkpoint/current.pt"))
        return found[0] if found else None

    def leaves_nothing(self) -> None:
        """No device store, no Ray folder (nor Ray's own ray/session_*) left."""
        assert not any(self.store.iterdir()), list(self.store.iterdir())
        assert not any(self.ray_tmp.iterdir()), list(self.ray_tmp.rglob("*"))[:5]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


def test_sigterm_during_ray_start_up_is_exit_143_with_a_message(tmp_path):
    run = _Run(tmp_path)
    try:
        run.wait_for(lambda: run.sessions(), "Ray session folder")  # ray.init is under way
        mark = run.ray_folders()[0].name
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=120) == 143, run.stderr
        err = run.stderr
        assert "Traceback" not in err
        assert "stopping (SIGTERM)" in err
        assert "terminated (SIGTERM): no run folder was published" in err
        run.leaves_nothing()
        assert not list(run.out.glob(".*.partial")) and marked_processes(mark) == []
    finally:
        run.close()


def test_a_second_sigterm_while_stopping_waits_for_the_cleanup(tmp_path):
    run = _Run(tmp_path)
    try:
        run.wait_for(run.checkpoint, "checkpoint")  # training on Ray
        mark = run.ray_folders()[0].name
        run.proc.send_signal(signal.SIGTERM)
        run.wait_for(lambda: "stopping (SIGTERM)" in run.stderr, "'stopping' line", 60)
        run.proc.send_signal(signal.SIGTERM)  # while Ray shuts down and the store goes
        assert run.proc.wait(timeout=120) == 143, run.stderr
        err = run.stderr
        assert "Traceback" not in err
        assert "SIGTERM again: still cleaning up" in err
        assert "terminated (SIGTERM): no run folder was published" in err
        assert "fedrule run --resume" in err
        run.leaves_nothing()
        assert run.checkpoint() is not None and marked_processes(mark) == []
    finally:
        run.close()


def test_kill_9_leaves_no_ray_agents_no_store_and_the_run_resumes(tmp_path):
    run = _Run(tmp_path)
    try:
        run.wait_for(run.checkpoint, "checkpoint")
        (folder,) = run.ray_folders()
        assert len(marked_processes(folder.name)) >= 3  # gcs, raylet, agents, workers
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait()
        deadline = time.monotonic() + 15
        while marked_processes(folder.name) or folder.exists() or any(run.store.iterdir()):
            assert time.monotonic() < deadline, (marked_processes(folder.name), run.stderr)
            time.sleep(0.1)
        run.leaves_nothing()
        partial = run.checkpoint().parent.parent
    finally:
        run.close()
    resumed = _Run(tmp_path, resume=partial)  # a clean run from here: its session goes too
    try:
        assert resumed.proc.wait(timeout=600) == 0, resumed.stderr
        assert len(list(resumed.out.glob("fleet-*"))) == 1
        resumed.leaves_nothing()
    finally:
        resumed.close()
