"""Run folders never lose results, and nothing private is left behind by killed runs."""

import os
import subprocess
import sys

import pytest

from fedrule.errors import ConfigError
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
        one, two = first.commit(), second.commit()
    assert one != two and one.is_dir() and two.is_dir()
    assert {(one / "a.txt").read_text(), (two / "a.txt").read_text()} == {"first", "second"}


def test_the_commit_takes_the_next_free_name_when_another_process_published_first(tmp_path):
    with RunDir(tmp_path, "same") as run:
        run.write_text("a.txt", "mine")
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
    with RunDir(tmp_path, "new") as run:
        run.commit()
    assert not plain.exists() and resumable.exists()


def test_resume_refuses_what_is_not_a_resumable_partial(tmp_path):
    with pytest.raises(ConfigError, match="partial run folder"):
        RunDir(tmp_path, "x", resume=tmp_path / "not-partial")
    empty = tmp_path / f".x-20260101-000000.{_dead_pid()}.partial"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no checkpoint"):
        RunDir(tmp_path, "x", resume=empty)
    alive = tmp_path / f".x-20260101-000000.{os.getppid()}.partial"
    (alive / "checkpoint").mkdir(parents=True)
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
