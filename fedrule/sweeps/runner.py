"""Run a sweep's runs as local ``python -m fedrule run`` processes, at most ``parallel`` at once.

The sweep folder ``<out>/<name>-sweep-<stamp>/`` holds ``sweep.json`` (the plan), ``scenario.yaml``
(the scenario file as given: every run reads this copy), one published run folder per finished
run (``<cell>-s<seed>/``), ``runs.csv`` (every run's status, seconds and error) and
``summary.csv``. A run works in ``.work/<run>/`` (its log in ``.work/<run>.log``) and its folder
is moved up when it has been published, so a finished run is exactly a ``<run>/metrics.json``.
Resuming skips finished runs, adopts runs published in ``.work`` but not yet moved (the sweep
was killed in between), waits for runs of the stopped sweep that are still alive (their process
ids are in ``.work/<run>.pid``), continues runs that left a checkpoint (``fedrule run
--resume``), and starts the rest again. While a sweep runs, ``.work/sweep.pid`` names it: a
second ``--resume`` of the same folder is refused.

A run is a child process in its own process group, and on Linux the kernel sends it SIGTERM
when the sweep dies (``lifeline.die_with_parent``): a stopped sweep stops its runs (each keeps
its checkpoint), a SIGKILLed one too, instead of leaving them to run on unwatched.

The same command again (same scenario file contents, ``--grid``, ``--seeds``, ``--set`` and
``--out``) while an earlier sweep of it is unfinished is refused with a one-line error that
names that sweep's folder and the ``--resume`` command: starting every run again in a new
folder is rarely what was meant, and resuming silently would hide that the first one stopped.
A finished sweep can be repeated: it starts a new folder.

With a Ray cluster (``--set engine.ray_address=...`` or ``$RAY_ADDRESS``), every run is still a
local process; each federated run joins the cluster for its simulation.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedrule.errors import ConfigError, Terminated, disk_error
from fedrule.lifeline import PARENT
from fedrule.pids import alive, read_pid_file, write_pid_file
from fedrule.scenario import load_scenario
from fedrule.sweeps.plan import SweepPlan, SweepRun, parse_grid, parse_seeds
from fedrule.sweeps.summary import read_seconds, summarize_sweep

SPEC = "sweep.json"
BASE = "scenario.yaml"
WORK = ".work"
LOCK = "sweep.pid"
POLL_SECONDS = 0.2
STOP_SECONDS = 60.0

Active = dict[str, tuple[SweepRun, subprocess.Popen, float]]
"""The runs under way: name -> (run, its process, when it started)."""


@dataclass
class SweepOutcome:
    """What a sweep did: its folder, how many runs it found finished, ran, and which failed."""

    path: Path
    total: int
    skipped: int = 0
    finished: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def open_sweep(
    scenario: Path | None,
    grid: list[str],
    seeds: str | None,
    sets: list[str],
    out: Path,
    resume: Path | None,
) -> tuple[Path, SweepPlan]:
    """Validate every run's scenario, then create the sweep folder (or read a resumed one).
    Bad input raises ``ConfigError`` before anything is created or run."""
    if resume is not None:
        if scenario is not None or grid or seeds is not None or sets:
            raise ConfigError(
                "a resumed sweep keeps its own scenario, grid, seeds and --set",
                path="--resume",
                hint="give only --resume DIR (and --parallel)",
            )
        spec_path = resume / SPEC
        if not spec_path.is_file():
            raise ConfigError(f"is not a sweep folder (no {SPEC})", path=str(resume))
        _refuse_if_running(resume)
        spec = json.loads(spec_path.read_text())
        plan = SweepPlan.from_json(spec["plan"], resume / BASE)
        plan.validate()
        return resume, plan
    if scenario is None:
        raise ConfigError("no scenario file given", path="sweep", hint="fedrule sweep SCENARIO")
    axes = parse_grid(grid, scenario)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if seed_list is None:
        seed_list = tuple(load_scenario(scenario, sets).seeds)
    plan = SweepPlan(scenario, tuple(sets), axes, seed_list)
    name = plan.validate()
    if out.exists() and not out.is_dir():
        raise ConfigError("is a file, not a folder", path=str(out), hint="--out")
    _refuse_unfinished_twin(out, name, scenario, plan)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        path, n = out / f"{name}-sweep-{stamp}", 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                n += 1
                path = out / f"{name}-sweep-{stamp}-{n}"
        shutil.copyfile(scenario, path / BASE)
        spec = {
            "name": name,
            "created": stamp,
            "source": str(scenario.resolve()),
            "cwd": os.getcwd(),  # runs resolve relative data paths from here, as fedrule run does
            "plan": SweepPlan(path / BASE, plan.sets, plan.axes, plan.seeds).to_json(),
        }
        (path / SPEC).write_text(json.dumps(spec, indent=2) + "\n")
    except OSError as err:  # a read-only or full --out: one line, no half-made sweep folder
        if path is not None and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        failure = disk_error(err, out, "the sweep folder", setting="--out")
        if failure is None:
            raise
        raise failure from None
    return path, SweepPlan(path / BASE, plan.sets, plan.axes, plan.seeds)


def _refuse_unfinished_twin(out: Path, name: str, scenario: Path, plan: SweepPlan) -> None:
    """A ``ConfigError`` naming an unfinished sweep in ``out`` of the same scenario text, grid,
    seeds and ``--set`` (the same command again), and how to continue it."""
    if not out.is_dir():
        return
    wanted = SweepPlan(Path(BASE), plan.sets, plan.axes, plan.seeds).to_json()
    wanted.pop("scenario")
    text = scenario.read_bytes()
    for folder in sorted(out.glob(f"{name}-sweep-*")):
        try:
            spec = json.loads((folder / SPEC).read_text())
            same = {k: v for k, v in spec["plan"].items() if k != "scenario"} == wanted
            same = same and (folder / BASE).read_bytes() == text
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not same:
            continue
        runs = SweepPlan.from_json(spec["plan"], folder / BASE).runs()
        done = _count_finished(folder, runs)
        if done == len(runs):
            continue
        owner = read_pid_file(folder / WORK / LOCK)
        state = f"is running it (process {owner})" if owner is not None else "stopped"
        raise ConfigError(
            f"an unfinished sweep of the same scenario, grid, seeds and --set ({done} of "
            f"{len(runs)} runs finished; it {state})",
            path=str(folder),
            hint=f"continue it with: fedrule sweep --resume {folder}; or remove it to start anew",
        )


def run_sweep(
    path: Path, plan: SweepPlan, parallel: int = 1, console: Console | None = None
) -> SweepOutcome:
    """Run every unfinished run of ``plan`` in ``path``; writes ``runs.csv`` and
    ``summary.csv`` (also when interrupted: what is finished so far)."""
    console = console or Console(stderr=True)
    if parallel < 1:
        raise ConfigError(f"expected a whole number >= 1, got {parallel}", path="--parallel")
    work = path / WORK
    try:
        work.mkdir(exist_ok=True)
    except OSError as err:
        raise disk_error(err, path, "the sweep folder") or err from None
    _claim(path)
    try:
        outcome = _run_all(path, plan, parallel, console)
    finally:
        (work / LOCK).unlink(missing_ok=True)
    if not any(work.iterdir()):
        work.rmdir()  # kept with the logs of failed runs
    return outcome


def _refuse_if_running(path: Path) -> None:
    """A ``ConfigError`` if another live process runs the sweep in ``path``."""
    owner = read_pid_file(path / WORK / LOCK)
    if owner is not None and owner != os.getpid():
        raise ConfigError(
            f"is being run by process {owner}", path=str(path), hint="wait for it or stop it"
        )


def _claim(path: Path) -> None:
    """Name this process in ``.work/sweep.pid``, unless another live one runs the sweep."""
    _refuse_if_running(path)
    try:
        write_pid_file(path / WORK / LOCK, os.getpid())
    except OSError as err:
        raise disk_error(err, path, "the sweep folder") or err from None


def _run_all(path: Path, plan: SweepPlan, parallel: int, console: Console) -> SweepOutcome:
    runs = plan.runs()
    outcome = SweepOutcome(path, len(runs))
    work = path / WORK
    pending: list[SweepRun] = []
    waiting: dict[str, SweepRun] = {}  # runs of a stopped sweep that are still alive
    for run in runs:
        if _finished(path, run) or _adopt(path, run):
            outcome.skipped += 1
        elif (pid := _alive_run(path, run)) is not None:
            waiting[run.name] = run
            console.print(
                f"{run.name}: its run from the stopped sweep is still alive (process {pid}): "
                "waiting for it to end",
                highlight=False,
            )
        else:
            pending.append(run)
    spec = json.loads((path / SPEC).read_text())
    cwd = spec.get("cwd") if Path(spec.get("cwd", "")).is_dir() else None
    if outcome.skipped:
        console.print(f"{outcome.skipped} of {len(runs)} runs already finished: skipped")
    active: Active = {}
    progress = _progress(console, len(runs), outcome.skipped)
    try:
        while pending or active or waiting:
            for name, run in list(waiting.items()):
                if _alive_run(path, run) is not None:
                    continue
                del waiting[name]
                if _finished(path, run) or _adopt(path, run):
                    outcome.finished += 1
                    progress.done(f"finished {name} (by the stopped sweep's run)")
                else:
                    pending.insert(0, run)  # resumed from its checkpoint, if it left one
            while pending and len(active) + len(waiting) < parallel:
                run = pending.pop(0)
                active[run.name] = (run, _start(path, plan, run, cwd), time.perf_counter())
                progress.update(running=sorted(active))
            time.sleep(POLL_SECONDS)
            for name, (run, proc, started) in list(active.items()):
                code = proc.poll()
                if code is None:
                    continue
                del active[name]
                (work / f"{name}.pid").unlink(missing_ok=True)
                seconds = time.perf_counter() - started
                if code == 0 and _adopt(path, run):
                    outcome.finished += 1
                    progress.done(f"finished {name} ({seconds:.1f} s)")
                else:
                    error = _error_line(work / f"{name}.log", code)
                    outcome.failed[name] = error
                    progress.failed(f"failed: {name} (exit {code}): {error}")
                progress.update(running=sorted(active))
    except BaseException as exc:
        _stop(active, work, signal.SIGINT if _is_ctrl_c(exc) else signal.SIGTERM)
        progress.stop()
        with contextlib.suppress(OSError):  # the folder may be gone (removed while stopping)
            _write_tables(path, plan, outcome)
        console.print(
            f"sweep stopped: {_count_finished(path, runs)} of {len(runs)} runs finished; "
            f"continue with: fedrule sweep --resume {path}"
        )
        raise
    progress.stop()
    _write_tables(path, plan, outcome)
    return outcome


def _is_ctrl_c(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Terminated)


def _alive_run(path: Path, run: SweepRun) -> int | None:
    """The process id of ``run``'s process if it still runs (a stopped sweep's child)."""
    pid_file = path / WORK / f"{run.name}.pid"
    pid = read_pid_file(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
    return pid


def _finished(path: Path, run: SweepRun) -> bool:
    return (path / run.name / "metrics.json").is_file()


def _count_finished(path: Path, runs: list[SweepRun]) -> int:
    return sum(_finished(path, run) for run in runs)


def _published(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "metrics.json").is_file()
    )


def _adopt(path: Path, run: SweepRun) -> bool:
    """Move a run folder published in ``.work/<run>/`` to ``<sweep>/<run>``."""
    if _finished(path, run):
        return True
    published = _published(path / WORK / run.name)
    if not published:
        return False
    target = path / run.name
    if target.exists():
        shutil.rmtree(target)
    os.rename(published[-1], target)
    shutil.rmtree(target / "checkpoint", ignore_errors=True)  # its commit was killed midway
    shutil.rmtree(path / WORK / run.name, ignore_errors=True)
    log = path / WORK / f"{run.name}.log"
    log.unlink(missing_ok=True)
    return True


def _resumable(folder: Path) -> Path | None:
    """A partial run folder with a checkpoint, or complete (its commit was killed), whose
    process is gone (``fedrule run --resume``)."""
    if not folder.is_dir():
        return None
    for partial in sorted(folder.glob(".*.partial")):
        pid = partial.name.rsplit(".", 2)[-2]
        worth = (partial / "checkpoint").is_dir() or (partial / "metrics.json").is_file()
        if worth and not (pid.isdigit() and alive(int(pid))):
            return partial
    return None


def _start(path: Path, plan: SweepPlan, run: SweepRun, cwd: str | None) -> subprocess.Popen:
    folder = path / WORK / run.name
    command = [sys.executable, "-m", "fedrule", "run"]
    partial = _resumable(folder)
    if partial is not None:
        command += ["--resume", str(partial.resolve())]
    else:
        command += [str(plan.scenario.resolve()), "--out", str(folder.resolve())]
        for override in [*plan.sets, *run.overrides()]:
            command += ["--set", override]
    command.append("--quiet")
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    env[PARENT] = str(os.getpid())  # the run asks for SIGTERM when this process dies
    log = open(path / WORK / f"{run.name}.log", "ab")  # noqa: SIM115 (the child owns it)
    try:
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            process_group=0,  # its own group: the sweep signals it, and can kill what it started
        )
    finally:
        log.close()
    write_pid_file(path / WORK / f"{run.name}.pid", proc.pid)
    return proc


def _error_line(log: Path, code: int) -> str:
    """The child's one-line ``error: ...`` (or its last line) from its log."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    if code == 0:
        return "the run ended without publishing its folder"
    return lines[-1] if lines else f"exit code {code}"


def _stop(active: Active, work: Path, signum: int) -> None:
    """Stop running children with the sweep's own signal (they are in process groups of their
    own, so a terminal's Ctrl-C reaches only the sweep); a federated run keeps its checkpoint
    for the resumed sweep. After ``STOP_SECONDS``, a child's whole process group is killed."""
    procs = {name: proc for name, (_, proc, _) in active.items()}
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
    deadline = time.monotonic() + STOP_SECONDS
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for name, proc in procs.items():
        proc.wait()
        (work / f"{name}.pid").unlink(missing_ok=True)


def _write_tables(path: Path, plan: SweepPlan, outcome: SweepOutcome) -> None:
    summarize_sweep(path, plan)
    rows = []
    for run in plan.runs():
        folder = path / run.name
        finished = _finished(path, run)
        status = "finished" if finished else "failed" if run.name in outcome.failed else "pending"
        row = {"run": run.name, "cell": run.cell, "seed": run.seed, "status": status}
        row |= {"folder": run.name if finished else ""}
        seconds = read_seconds(folder) if finished else None
        row |= {"seconds": "" if seconds is None else f"{seconds:.3f}"}
        row |= {"error": outcome.failed.get(run.name, "")}
        rows.append(row)
    with open(path / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["run"])
        writer.writeheader()
        writer.writerows(rows)


class _Bar:
    """One progress bar over the sweep's runs (a line per finished run when not a terminal)."""

    def __init__(self, console: Console, total: int, done: int) -> None:
        self.console, self.total, self.count = console, total, done
        self.progress: Progress | None = None
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
            )
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=total, completed=done, info="")

    def update(self, running: list[str]) -> None:
        if self.progress is not None:
            text = f"running: {', '.join(running)}" if running else ""
            self.progress.update(self.task, info=text)

    def done(self, text: str) -> None:
        self.count += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        else:
            self.console.print(f"[{self.count}/{self.total}] {text}", highlight=False, markup=False)

    def failed(self, text: str) -> None:
        self.count += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
            self.progress.console.print(text, style="red", highlight=False, markup=False)
        else:
            self.console.print(f"[{self.count}/{self.total}] {text}", highlight=False, markup=False)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _progress(console: Console, total: int, done: int) -> _Bar:
    return _Bar(console, total, done)
