"""A kill at any step of a run ends in a complete run or a partial that resumes to the same files.

Each case runs ``fedrule run`` in a fresh process with ``FEDRULE_KILL_AT`` naming a step of
``fedrule.killpoints`` (the process signals itself there: no timing), then resumes what is left
(``fedrule run --resume``) and compares every file of the published folder with an
uninterrupted run's, byte for byte. Only ``log.txt``, ``convergence.png`` (validation against
training seconds) and the seconds (the ``seconds`` column of ``rounds-seed*.csv`` and
``history-seed*.csv``, ``seconds``, ``*_seconds`` and ``*_seconds_std`` keys and columns of
``metrics.json`` and ``rule.csv``) may differ.

The processes are forked from a server that has imported fedrule once (multiprocessing's
forkserver), so a case costs its run, not an interpreter start.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import yaml

from fedrule import killpoints
from fedrule.report.rundir import CHECKPOINTS, RunDir
from tests.fleets import fleet_scenario

pytestmark = pytest.mark.slow

_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(  # what every run imports, torch's optimisers' lazy imports too
    ["fedrule.cli", "fedrule.report.run", "fedrule.engine.federated", "torch._dynamo", "matplotlib"]
)

TIMING = re.compile(r"(^|_)seconds(_std)?$")  # seconds, *_seconds and their spread
UNCOMPARED = {"log.txt", "convergence.png"}  # the log, and a plot against training seconds


def _federated() -> dict:
    """Two seeds of a budgeted fleet (FedAdam, estimator refits): seed 1 trains all 4 rounds
    and gains in the last (its last checkpoint is the last round's: issue item 1), seed 4
    stops early after round 2 (``federated.patience``: item 2)."""
    raw = fleet_scenario(
        engine__transport="inprocess",
        federated__rounds=4,
        federated__eval_every=1,
        federated__patience=1,
        federated__mode="budgeted",
        federated__refit_every=2,
        federated__server_optimizer="fedadam",
        federated__server_lr=0.05,
    )
    raw["seeds"] = [1, 4]
    raw["estimator"] |= {"configs": 12, "epochs": 10}
    return raw


def _centralised() -> dict:
    return {
        "name": "central",
        "data": {
            "source": "synthetic",
            "synthetic": {"users": 100, "items": 60, "interactions_per_user": 12},
        },
        "model": {"dim": 8, "blocks": 4, "groups": 3},
        "train": {"epochs": 2, "batch_size": 256, "lr": 0.02, "eval_every": 1},
        "eval": {"ks": [10], "metric": "ndcg@10"},
        "estimator": {"configs": 12, "epochs": 10},
        "search": {"budgets": ["1/2"], "cycles": 5},
    }


# ---------------------------------------------------------------------- processes
def _child(argv: list[str], kill_at: str, stderr: str, steps: str) -> None:
    """``fedrule`` in a forked process: stderr to a file, the steps it reached to another,
    its exit code kept."""
    fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.environ[killpoints.ENV] = kill_at
    from fedrule.cli import main

    with killpoints.recording() as reached:
        code = main(argv)
    Path(steps).write_text(json.dumps(reached))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fedrule(argv: list[str], tmp: Path, kill_at: str = "") -> tuple[int, str, list[str]]:
    """Run ``fedrule ARGV`` in a fresh process: its exit code (-N: killed by signal N), its
    stderr, and the steps it reached (if it ended by itself)."""
    number = len(list(tmp.glob("stderr-*")))
    stderr, steps = tmp / f"stderr-{number}.txt", tmp / f"steps-{number}.json"
    process = _FORKS.Process(target=_child, args=(argv, kill_at, str(stderr), str(steps)))
    process.start()
    process.join(timeout=300)
    assert process.exitcode is not None, f"fedrule {argv} did not end"
    reached = json.loads(steps.read_text()) if steps.is_file() else []
    return process.exitcode, stderr.read_text(), reached


def _scenario_file(raw: dict, folder: Path) -> Path:
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _published(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def federated_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    folder = tmp_path_factory.mktemp("federated")
    path = _scenario_file(_federated(), folder)
    code, stderr, steps = _fedrule(["run", str(path), "--out", str(folder / "out"), "-q"], folder)
    assert code == 0, stderr
    (reference,) = _published(folder / "out")
    return path, reference, steps


@pytest.fixture(scope="module")
def centralised_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    folder = tmp_path_factory.mktemp("centralised")
    path = _scenario_file(_centralised(), folder)
    code, stderr, steps = _fedrule(["run", str(path), "--out", str(folder / "out"), "-q"], folder)
    assert code == 0, stderr
    (reference,) = _published(folder / "out")
    return path, reference, steps


# ---------------------------------------------------------------------- comparison
def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _untimed(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not TIMING.search(str(k))}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _untimed_csv(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: v for k, v in row.items() if not TIMING.search(k)} for row in rows]


def assert_same_run(reference: Path, folder: Path) -> None:
    """Every file of ``folder`` is ``reference``'s, byte for byte, but the log and timings."""
    assert _files(folder) == _files(reference)
    for name in sorted(_files(reference) - UNCOMPARED):
        mine, theirs = (folder / name).read_bytes(), (reference / name).read_bytes()
        if mine == theirs:
            continue
        if name.endswith(".json"):  # metrics.json, rule.json
            assert _untimed(json.loads(mine)) == _untimed(json.loads(theirs))
        elif name.endswith(".csv"):
            assert _untimed_csv(mine.decode()) == _untimed_csv(theirs.decode()), name
        else:
            digests = [hashlib.sha256(b).hexdigest()[:12] for b in (mine, theirs)]
            raise AssertionError(f"{name} differs: sha256 {digests[0]} != {digests[1]}")
    assert (folder / "log.txt").is_file()


# ---------------------------------------------------------------------- the cases
EXIT = {"KILL": -signal.SIGKILL, "TERM": 143, "INT": 130}

# every step of killpoints.STEPS a federated run reaches, some at several occurrences (seed 1
# is the first seed, seed 4 the second): SIGKILL everywhere, SIGTERM and SIGINT at a few
FEDERATED_KILLS = [
    "write scenario.yaml",
    "popularity count",
    "labelling",  # the first round's validation: no checkpoint yet
    "checkpoint write",  # the first checkpoint's temporary file
    "round checkpoint",
    "estimator fit",  # the budgeted refit before round 3
    "checkpoint write:4",  # the last round's checkpoint half-written: resumes from round 3
    "round checkpoint:4",  # the last round's (issue item 1)
    "labelling:36",  # the final labelling of seed 1
    "labelling:40",  # its verification of the searched configurations
    "estimator fit:2",
    "search:2",
    "dispatch:3",
    "write rounds-seed*.csv",
    "write devices-seed*.csv",
    "write coverage-seed*.csv",
    "temporary written:5",  # model-seed1.pt's temporary copy
    "write model-seed*.pt",
    "write checkpoint/seed*.json",  # the seed is done, its round checkpoint still there
    "checkpoint cleared",
    "write log.txt",
    "popularity count:2",  # seed 1 kept, seed 4 counting
    "round checkpoint:6",  # seed 4's early stop (issue item 2)
    "dispatch:12",
    "checkpoint cleared:2",
    "write tiers.csv",
    "write convergence.png",
    "write coverage.png",
    "write results.csv",
    "write tiers.png",
    "write log.txt:3",
    "temporary written:20",  # metrics.json's temporary copy
    "write metrics.json",  # complete: --resume publishes it as it is
    "published",  # published with its checkpoints: the next start removes them
    "round checkpoint:2:TERM",
    "dispatch:3:INT",  # issue item 1: Ctrl-C in the dispatch left a partial that crashed
    "round checkpoint:6:INT",
    "write metrics.json:TERM",
    "published:TERM",  # after the rename: ignored, the run is finished
]

# a centralised run has no checkpoint: killed before metrics.json, it starts over
CENTRALISED_KILLS = [
    "write scenario.yaml",
    "epoch",
    "estimator fit",
    "search",
    "write history-seed*.csv",
    "write users-seed*.csv",
    "write model-seed*.pt",
    "write rule.csv",
    "write rule.json",
    "write quality_vs_memory.png",
    "write results.csv",
    "write log.txt",
    "write metrics.json",
    "published",
    "epoch:2:TERM",
    "published:INT",
]


def _signal_of(spec: str) -> str:
    return next((p.upper() for p in spec.split(":")[1:] if p.upper() in EXIT), "KILL")


def _kill_and_recover(scenario: Path, reference: Path, spec: str, tmp: Path) -> Path:
    """Kill a run at ``spec``, then recover what it left as a user would; the published run."""
    out = tmp / "out"
    argv = ["run", str(scenario), "--out", str(out), "-q"]
    code, stderr, _ = _fedrule(argv, tmp, kill_at=spec)
    sig = _signal_of(spec)
    assert "Traceback" not in stderr, stderr
    published, partials = _published(out), list(out.glob(".*.partial"))
    if spec.startswith("published"):  # renamed into place before the kill
        assert not partials and len(published) == 1
        if sig == "KILL":
            assert code == -signal.SIGKILL
            federated = "fleet" in published[0].name  # a centralised run has no checkpoint
            assert (published[0] / CHECKPOINTS).is_dir() == federated
            with RunDir(out, "next"):  # the next start in that --out removes them
                pass
        else:  # the commit ignores a signal that comes after the rename
            assert code == 0 and "ignored" in stderr, stderr
        assert not (published[0] / CHECKPOINTS).exists()
        return published[0]
    assert code == EXIT[sig], (code, stderr)
    assert not published
    if not partials:  # SIGINT or SIGTERM before anything worth keeping: a fresh run
        assert sig != "KILL" and "no run folder was published" in stderr
        code, stderr, _ = _fedrule(argv, tmp)
    else:
        (partial,) = partials
        if sig != "KILL":
            assert f"fedrule run --resume {partial}" in stderr
        complete = (partial / "metrics.json").is_file()
        log = (partial / "log.txt").read_bytes() if complete else b""
        code, stderr, _ = _fedrule(["run", "--resume", str(partial), "-q"], tmp)
        if complete:  # published as it was: nothing computed again, nothing logged
            assert (_published(out)[0] / "log.txt").read_bytes() == log
    assert code == 0, stderr
    assert not list(out.glob(".*.partial"))
    (folder,) = _published(out)
    assert not (folder / CHECKPOINTS).exists()
    return folder


@pytest.mark.parametrize("spec", FEDERATED_KILLS)
def test_a_federated_run_killed_at_any_step_ends_as_an_uninterrupted_one(
    spec, federated_reference, tmp_path
):
    scenario, reference, _ = federated_reference
    folder = _kill_and_recover(scenario, reference, spec, tmp_path)
    assert_same_run(reference, folder)


@pytest.mark.parametrize("spec", CENTRALISED_KILLS)
def test_a_centralised_run_killed_at_any_step_ends_as_an_uninterrupted_one(
    spec, centralised_reference, tmp_path
):
    scenario, reference, _ = centralised_reference
    folder = _kill_and_recover(scenario, reference, spec, tmp_path)
    assert_same_run(reference, folder)


def test_a_kept_seeds_every_device_test_reaches_the_resumed_tier_table(tmp_path):
    """``eval.every_device``: a seed finished before the kill keeps its every-device test (the
    resumed ``tiers.csv`` had lost its ``*_every_device`` columns)."""
    raw = fleet_scenario(engine__transport="inprocess", eval__every_device=True)
    raw["seeds"] = [0, 1]
    path = _scenario_file(raw, tmp_path)
    code, stderr, _ = _fedrule(["run", str(path), "--out", str(tmp_path / "ref"), "-q"], tmp_path)
    assert code == 0, stderr
    (reference,) = _published(tmp_path / "ref")
    assert "ndcg@10_every_device" in (reference / "tiers.csv").read_text()
    folder = _kill_and_recover(path, reference, "checkpoint cleared", tmp_path)
    assert "seed 0: kept from the interrupted run" in (folder / "log.txt").read_text()
    assert_same_run(reference, folder)


def test_the_cases_cover_every_step():
    federated = {s.split(":")[0] for s in FEDERATED_KILLS if _signal_of(s) == "KILL"}
    centralised = {s.split(":")[0] for s in CENTRALISED_KILLS if _signal_of(s) == "KILL"}
    assert federated | centralised == set(killpoints.STEPS)


def test_a_federated_and_a_centralised_run_reach_exactly_the_listed_steps(
    federated_reference, centralised_reference
):
    """``killpoints.STEPS`` cannot drift from the code: every step it lists is reached by one
    of the two runs, and they reach no other."""
    reached = [*federated_reference[2], *centralised_reference[2]]
    assert set(reached) == set(killpoints.STEPS)
    federated = set(federated_reference[2])
    assert {"round checkpoint", "dispatch", "write tiers.csv", "published"} <= federated
    assert {"epoch", "write rule.csv", "published"} <= set(centralised_reference[2])
    steps = federated_reference[2]  # the temporary copies the matrix names are the ones meant
    temporary = [i for i, step in enumerate(steps) if step == "temporary written"]
    assert steps[temporary[5 - 1] + 1] == "write model-seed*.pt"
    assert steps[temporary[20 - 1] + 1] == "write metrics.json"
