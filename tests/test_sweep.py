"""``fedrule sweep``: grid parsing and errors, and a killed sweep resumed to the same summary."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fedrule.cli import main
from fedrule.errors import ConfigError
from fedrule.scenario import load_scenario
from fedrule.sweeps import SweepPlan, parse_grid, parse_seeds

GRID = ["--grid", "model.dim=8,16", "--grid", "train.lr=0.01,0.05"]


@pytest.fixture
def scenario_file(tmp_path, tiny_scenario) -> Path:
    tiny_scenario["train"] |= {"epochs": 1, "eval_every": 1}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario))
    return path


def test_grid_values_split_at_top_level_commas_only():
    axes = parse_grid(["eval.ks=[5,10],[20]", "train.lr=0.1, 1e-2", "a.b='x,y',z"])
    assert [a.values for a in axes] == [("[5,10]", "[20]"), ("0.1", "1e-2"), ("'x,y'", "z")]
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds("3-5") == (3, 4, 5)
    for bad in ("", "1,1", "a"):
        with pytest.raises(ConfigError, match="--seeds"):
            parse_seeds(bad)


def test_every_run_has_a_stable_name_from_its_grid_values_and_seed(scenario_file):
    axes = parse_grid(["model.dim=8,16", "train.lr=0.01,[1]"])
    plan = SweepPlan(scenario_file, (), axes, (0, 1))
    names = [r.name for r in plan.runs()]
    assert names[:3] == ["dim-8_lr-0.01-s0", "dim-8_lr-0.01-s1", "dim-8_lr-1-s0"]
    assert len(set(names)) == 8
    assert SweepPlan(scenario_file, (), (), (0,)).runs()[0].name == "base-s0"


def test_linked_keys_sweep_their_value_pairs_together(scenario_file):
    """``k1,k2=[a1,a2],[b1,b2]``: one cell per pair, not the cross product; crossed with a
    plain axis as usual."""
    axes = parse_grid(["model.dim,train.lr=[8,0.01],[16, 0.05]", "train.l2=0,1e-4"])
    plan = SweepPlan(scenario_file, (), axes, (0,))
    assert [values for _, values in plan.cells] == [
        (("model.dim", "8"), ("train.lr", "0.01"), ("train.l2", "0")),
        (("model.dim", "8"), ("train.lr", "0.01"), ("train.l2", "1e-4")),
        (("model.dim", "16"), ("train.lr", "0.05"), ("train.l2", "0")),
        (("model.dim", "16"), ("train.lr", "0.05"), ("train.l2", "1e-4")),
    ]
    assert plan.runs()[0].name == "dim-8_lr-0.01_l2-0-s0"
    plan.validate()
    assert load_scenario(scenario_file, plan.runs()[2].overrides()).model.dim == 16


@pytest.mark.parametrize(
    ("grid", "named"),
    [
        ("model.dim,train.lr=[8,0.1],16", "model.dim,train.lr: expected lists of 2 values"),
        ("model.dim,model.dim=[8,8]", "--grid model.dim: is given twice"),
        ("model.dim,train.lrr=[8,0.1]", "train.lrr: unknown key"),
        ("model.dimm=8,16", "model.dimm: unknown key"),
        ("model.dim=8,abc", "model.dim: expected an integer"),
        ("seeds=1,2", "--grid seeds"),
        ("model.dim", "--grid"),
        ("model.dim=8,,16", "model.dim"),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_key_exit_2_before_anything_runs(
    tmp_path, scenario_file, capsys, grid, named
):
    out = tmp_path / "sweeps"
    assert main(["sweep", str(scenario_file), "--grid", grid, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and named in err and "\n" not in err
    assert not out.exists()


def _sweep(*args: str) -> subprocess.Popen:
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    command = [sys.executable, "-m", "fedrule", "sweep", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _rows(folder: Path, name: str) -> list[dict]:
    return list(csv.DictReader((folder / name).open()))


@pytest.mark.slow
def test_a_killed_sweep_resumed_ends_with_the_same_summary(tmp_path, scenario_file):
    args = [str(scenario_file), *GRID, "--seeds", "0,1", "--parallel", "2"]
    whole = _sweep(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.stdout.read().decode()
    (reference,) = (tmp_path / "whole").iterdir()

    killed = _sweep(*args, "--out", str(tmp_path / "killed"))
    deadline = time.monotonic() + 300
    while not list((tmp_path / "killed").glob("*/*-s[01]/metrics.json")):
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    killed.send_signal(signal.SIGTERM)
    output = killed.communicate(timeout=120)[0].decode()
    assert killed.returncode == 143, output
    (folder,) = (tmp_path / "killed").iterdir()
    assert "fedrule sweep --resume" in output
    statuses = [r["status"] for r in _rows(folder, "runs.csv")]
    assert 1 <= statuses.count("finished") < 8

    resumed = _sweep("--resume", str(folder))
    output = resumed.communicate(timeout=600)[0].decode()
    assert resumed.returncode == 0, output
    assert "already finished: skipped" in output
    assert (folder / "summary.csv").read_text() == (reference / "summary.csv").read_text()
    assert (folder / "summary.png").read_bytes() == (reference / "summary.png").read_bytes()
    summary = _rows(folder, "summary.csv")
    assert [(r["model.dim"], r["train.lr"], r["seeds"]) for r in summary] == [
        ("8", "0.01", "2"),
        ("8", "0.05", "2"),
        ("16", "0.01", "2"),
        ("16", "0.05", "2"),
    ]
    assert all(r["status"] == "finished" for r in _rows(folder, "runs.csv"))
    runs = sorted(p.name for p in folder.iterdir() if (p / "metrics.json").is_file())
    assert len(runs) == 8 and "dim-16_lr-0.05-s1" in runs


@pytest.mark.slow
def test_a_failed_run_is_reported_and_does_not_stop_the_others(tmp_path, scenario_file):
    # a budget below the smallest configuration is found only once the data is loaded
    out = tmp_path / "sweeps"
    sweep = _sweep(str(scenario_file), "--grid", "search.budgets=[0.01],[]", "--out", str(out))
    output = sweep.communicate(timeout=600)[0].decode()
    assert sweep.returncode == 1, output
    assert "failed: budgets-0.01-s0 (exit 2): search.budgets[0]: budget 0.01" in output
    (folder,) = out.iterdir()
    runs = {r["run"]: r for r in _rows(folder, "runs.csv")}
    assert runs["budgets-0.01-s0"]["status"] == "failed"
    assert "below the smallest configuration" in runs["budgets-0.01-s0"]["error"]
    assert runs["budgets-empty-s0"]["status"] == "finished"
    assert [r["cell"] for r in _rows(folder, "summary.csv")] == ["budgets-empty"]


# ------------------------------------------------------- a sweep's runs and its re-runs (26)
def _sleeper(seconds: int = 300) -> subprocess.Popen:
    return subprocess.Popen(["sleep", str(seconds)])


def test_the_same_sweep_command_again_is_refused_while_the_first_is_unfinished(
    tmp_path, scenario_file, capsys
):
    from fedrule.pids import write_pid_file
    from fedrule.sweeps import open_sweep

    out = tmp_path / "sweeps"
    args = ["--grid", "model.dim=8,16", "--seeds", "0", "--out", str(out)]
    first, _ = open_sweep(scenario_file, ["model.dim=8,16"], "0", [], out, None)
    assert main(["sweep", str(scenario_file), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {first}: an unfinished sweep of the same scenario, grid, seeds and --set (0 of "
        f"2 runs finished; it stopped) (continue it with: fedrule sweep --resume {first}; or "
        "remove it to start anew)"
    )
    assert list(out.iterdir()) == [first]
    sleeper = _sleeper()
    try:
        (first / ".work").mkdir()
        write_pid_file(first / ".work" / "sweep.pid", sleeper.pid)
        assert main(["sweep", str(scenario_file), *args]) == 2
        assert f"it is running it (process {sleeper.pid})" in capsys.readouterr().err
        assert main(["sweep", "--resume", str(first)]) == 2
        err = capsys.readouterr().err.strip()
        assert (
            err == f"error: {first}: is being run by process {sleeper.pid} (wait for it or stop it)"
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    # another grid, other seeds or another scenario text is another sweep; so is a repetition
    # of a finished one
    other, _ = open_sweep(scenario_file, ["model.dim=8,16"], "0,1", [], out, None)
    assert other != first
    for run in ("dim-8-s0", "dim-16-s0"):
        (first / run).mkdir()
        (first / run / "metrics.json").write_text("{}")
    again, _ = open_sweep(scenario_file, ["model.dim=8,16"], "0", [], out, None)
    assert again not in (first, other)


def test_a_resumed_sweep_does_not_start_a_run_that_is_still_alive(tmp_path, scenario_file):
    """A run of the stopped sweep still runs (its pid file names a live process): the resumed
    sweep waits for it and only then starts that run."""
    import io
    import threading

    from rich.console import Console

    from fedrule.pids import write_pid_file
    from fedrule.sweeps import open_sweep, run_sweep

    path, plan = open_sweep(scenario_file, [], "0", [], tmp_path / "sweeps", None)
    (path / ".work").mkdir()
    orphan = _sleeper(3)
    write_pid_file(path / ".work" / "base-s0.pid", orphan.pid)
    log = path / ".work" / "base-s0.log"
    seen: list[bool] = []

    def watch() -> None:
        while not log.exists():
            time.sleep(0.01)
        seen.append(orphan.poll() is not None)  # had the orphan ended when the run started?

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    printed = io.StringIO()
    outcome = run_sweep(path, plan, 1, Console(file=printed, width=200))
    orphan.wait()
    watcher.join(5)
    assert seen == [True]
    assert outcome.finished == 1 and not outcome.failed
    assert f"base-s0: its run from the stopped sweep is still alive (process {orphan.pid})" in (
        printed.getvalue()
    )
    assert not (path / ".work").exists()


def _run_processes(folder: Path) -> dict[str, list[int]]:
    """Live ``fedrule run`` processes of a sweep folder's runs, by run name."""
    runs: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "fedrule" in words and "run" in words:
            for word in words:
                if f"{folder}/.work/" in word:
                    name = word.split("/.work/")[1].split("/")[0]
                    runs.setdefault(name, []).append(int(entry.name))
    return runs


@pytest.mark.slow
def test_a_sigkilled_sweep_takes_its_runs_with_it_and_resumes_without_duplicates(
    tmp_path, scenario_file
):
    """Two runs of a few seconds each: SIGKILL the sweep while both train. They get SIGTERM from
    the kernel (PR_SET_PDEATHSIG) and stop within seconds, instead of running on unwatched;
    the resumed sweep never has two processes for one run."""
    from fedrule.pids import alive

    out = tmp_path / "sweeps"
    longer = ["--set", "train.epochs=30", "--set", "train.eval_every=30"]
    grid = ["--grid", "model.dim=8,16"]
    killed = _sweep(str(scenario_file), *grid, *longer, "--parallel", "2", "--out", str(out))
    deadline = time.monotonic() + 300
    while True:  # both first runs train in their run folders
        folders = list(out.glob("*-sweep-*"))
        running = _run_processes(folders[0]) if folders else {}
        partials = list(folders[0].glob(".work/*/.*.partial")) if folders else []
        if len(running) == 2 and len(partials) == 2:
            break
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    (folder,) = folders
    children = [pid for pids in running.values() for pid in pids]
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped = time.monotonic() + 10
    while any(alive(pid) for pid in children):
        assert time.monotonic() < stopped, "the killed sweep's runs run on"
        time.sleep(0.05)
    for name in running:
        log = (folder / ".work" / f"{name}.log").read_text()
        assert "stopping (SIGTERM)" in log and "terminated (SIGTERM)" in log, log
    resumed = _sweep("--resume", str(folder), "--parallel", "2")
    most = 0
    while resumed.poll() is None:
        most = max([most, *map(len, _run_processes(folder).values())])
        assert time.monotonic() < deadline + 600
        time.sleep(0.05)
    output = resumed.stdout.read().decode()
    assert resumed.returncode == 0, output
    assert most == 1  # never two processes for one run
    assert [r["status"] for r in _rows(folder, "runs.csv")] == ["finished"] * 2
