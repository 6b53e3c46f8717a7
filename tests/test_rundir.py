"""Run folders never lose results, and nothing private is left behind by killed runs."""

import os
import resource
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from fedrule import killpoints
from fedrule.engine.checkpoint import save_atomic
from fedrule.errors import ConfigError, DiskError
from fedrule.report.run import _save_model  # as run folders save models: a file object
from fedrule.report.rundir import RunDir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_two_runs_with_one_name_in_one_second_both_publish(tmp_path):
    first, second = RunDir(tmp_path, "same"), RunDir(tmp_path, "same")
    with first, second:
        first.write_text("a.txt", "first")
        second.write_text("a.txt", "second")
        for run in (first, second):
            run.write_json("metrics.json", {})
        one, two = first.commit(), second.commit()
    assert one != two and one.is_dir() and two.is_dir()
    assert {(one / "a.txt").read_text(), (two / "a.txt").read_text()} == {"first", "second"}


def test_the_commit_takes_the_next_free_name_when_another_process_published_first(tmp_path):
    with RunDir(tmp_path, "same") as run:
        run.write_text("a.txt", "mine")
        run.write_json("metrics.json", {})
        run.final.mkdir()  # another process published this name meanwhile
        (run.final / "theirs.txt").write_text("theirs")
        published = run.commit()
    assert published.name == f"{run.final.name.removesuffix('-2')}-2"
    assert (published / "a.txt").read_text() == "mine"
    assert (tmp_path / published.name.removesuffix("-2") / "theirs.txt").is_file()


def test_a_failed_run_leaves_nothing_unless_it_can_be_resumed(tmp_path):
    with pytest.raises(RuntimeError), RunDir(tmp_path, "x") as run:
        raise RuntimeError("boom")
    assert not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError), RunDir(tmp_path, "y") as run:
        run.write_text("checkpoint/current.pt", "state")
        raise RuntimeError("boom")
    (kept,) = tmp_path.iterdir()
    assert kept.name.startswith(".y-") and kept.name.endswith(".partial")


def test_stale_partials_of_dead_runs_go_unless_resumable(tmp_path):
    dead = _dead_pid()
    plain = tmp_path / f".old-20260101-000000.{dead}.partial"
    resumable = tmp_path / f".kept-20260101-000000.{dead}.partial"
    plain.mkdir()
    (resumable / "checkpoint").mkdir(parents=True)
    (resumable / "checkpoint" / "current.pt").write_bytes(b"state")
    complete = tmp_path / f".done-20260101-000000.{dead}.partial"
    complete.mkdir()
    (complete / "metrics.json").write_text("{}")
    with RunDir(tmp_path, "new") as run:
        run.write_json("metrics.json", {})
        run.commit()
    assert not plain.exists() and resumable.exists() and complete.exists()


def test_resume_refuses_what_is_not_a_resumable_partial(tmp_path):
    with pytest.raises(ConfigError, match="partial run folder"):
        RunDir(tmp_path, "x", resume=tmp_path / "not-partial")
    empty = tmp_path / f".x-20260101-000000.{_dead_pid()}.partial"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no scenario.yaml"):
        RunDir(tmp_path, "x", resume=empty)
    alive = tmp_path / f".x-20260101-000000.{os.getppid()}.partial"
    (alive / "checkpoint").mkdir(parents=True)
    (alive / "scenario.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="still being written"):
        RunDir(tmp_path, "x", resume=alive)


def test_device_stores_of_killed_runs_are_removed_at_the_next_start(tmp_path, monkeypatch):
    from fedrule.engine import federated

    dead, mine = _dead_pid(), os.getpid()
    owner = federated._store_owner()
    stale = tmp_path / f"{owner}{dead}-abc"
    live = tmp_path / f"{owner}{mine}-def"
    other_host = tmp_path / f"{federated.STORE_PREFIX}elsewhere-{dead}-ghi"
    for path in (stale, live, other_host):
        path.mkdir()
        (path / "data.npz").write_bytes(b"private")
    federated.remove_stale_device_stores(tmp_path)
    assert not stale.exists() and live.exists() and other_host.exists()


def _partial(root, name="x", **files):
    path = root / f".{name}-20260101-000000.{_dead_pid()}.partial"
    for file, text in {"scenario.yaml": "name: x\n", **files}.items():
        (path / file).parent.mkdir(parents=True, exist_ok=True)
        (path / file).write_text(text)
    return path


def test_a_complete_partial_is_published_as_it_is(tmp_path):
    """Killed between metrics.json and the rename: --resume publishes it, checkpoints dropped."""
    partial = _partial(tmp_path, **{"metrics.json": "{}", "checkpoint/seed0.json": "{}"})
    with RunDir(tmp_path, "x", resume=partial) as run:
        assert run.complete
        published = run.commit()
    assert published.name == "x-20260101-000000"
    assert sorted(p.name for p in published.iterdir()) == ["metrics.json", "scenario.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == [published.name]


def test_a_partial_without_checkpoint_is_started_over_in_place(tmp_path):
    partial = _partial(tmp_path, **{"rounds-seed0.csv": "half"})
    with RunDir(tmp_path, "x", resume=partial) as run:
        run.write_text("rounds-seed0.csv", "whole")
        run.write_json("metrics.json", {})
        published = run.commit()
    assert (published / "rounds-seed0.csv").read_text() == "whole"


def test_the_commit_refuses_a_folder_without_its_last_file(tmp_path):
    last = "metrics.json is written last"
    with pytest.raises(RuntimeError, match=last), RunDir(tmp_path, "x") as run:
        run.write_text("a.txt", "a")
        run.commit()
    assert not list(tmp_path.iterdir())


def test_checkpoints_left_in_a_published_run_go_at_the_next_start(tmp_path):
    """Killed between the rename and the checkpoints' removal: the next start removes them, and
    only from complete published folders."""
    published = tmp_path / "x-20260101-000000"
    (published / "checkpoint").mkdir(parents=True)
    (published / "checkpoint" / "current.pt").write_text("state")
    (published / "metrics.json").write_text("{}")
    unrelated = tmp_path / "notes" / "checkpoint"
    unrelated.mkdir(parents=True)
    resumable = _partial(tmp_path, "y", **{"checkpoint/current.pt": "state"})
    with RunDir(tmp_path, "next"):
        pass
    assert not (published / "checkpoint").exists() and (published / "metrics.json").is_file()
    assert unrelated.is_dir() and (resumable / "checkpoint" / "current.pt").is_file()


def test_a_signal_during_the_commit_waits_for_it_and_is_ignored(tmp_path, capsys, monkeypatch):
    """SIGTERM just after the rename (the real signal, raised at the kill point): the commit
    ends, and the run stays published."""
    monkeypatch.setattr(killpoints, "_target", killpoints.parse("published:TERM"))
    monkeypatch.setattr(killpoints, "_counts", {})
    previous = signal.getsignal(signal.SIGTERM)
    with RunDir(tmp_path, "x") as run:
        run.write_text("checkpoint/seed0.json", "{}")
        run.write_json("metrics.json", {})
        published = run.commit()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert published.is_dir() and not (published / "checkpoint").exists()
    assert "came after the run was published: ignored" in capsys.readouterr().err


@contextmanager
def _files_limited_to(num_bytes):
    """Writes past ``num_bytes`` fail as on a full disk (the kernel refuses them: EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (num_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    with pytest.raises(OSError), RunDir(tmp_path, "x") as run:
        run.write_text("checkpoint/seed0.json", "{}")  # keeps the partial
        run.write_text("a.txt", "old")
        run.write_with("b.pt", lambda path: torch.save(torch.zeros(4), path))
        before = (run.path / "b.pt").read_bytes()
        with _files_limited_to(4096):
            for write in (
                lambda: run.write_text("a.txt", "new" * 10_000),
                lambda: run.write_with("b.pt", lambda p: _save_model({"t": torch.ones(10_000)}, p)),
            ):
                with pytest.raises(DiskError, match="too large for its file system"):
                    write()
        raise OSError("the run fails")
    (partial,) = tmp_path.iterdir()
    assert (partial / "a.txt").read_text() == "old" and (partial / "b.pt").read_bytes() == before
    assert sorted(p.name for p in partial.iterdir()) == ["a.txt", "b.pt", "checkpoint"]


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "current.pt"
    save_atomic({"round": 1, "table": torch.zeros(4)}, path)
    with _files_limited_to(4096), pytest.raises(DiskError, match="the checkpoint"):  # EFBIG
        save_atomic({"round": 2, "table": torch.from_numpy(np.ones(10_000))}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["current.pt"]
    assert torch.load(path, weights_only=True)["round"] == 1


def test_a_killed_checkpoint_writers_temporary_file_goes_when_the_run_resumes(tmp_path):
    from fedrule.engine.checkpoint import load_checkpoint

    dead = tmp_path / f".current.pt.{_dead_pid()}.tmp"
    live = tmp_path / f".current.pt.{os.getpid()}.tmp"
    for path in (dead, live):
        path.write_bytes(b"half a checkpoint")
    assert load_checkpoint(tmp_path, 0) is None  # no checkpoint yet: the run starts afresh
    assert not dead.exists() and live.exists()
