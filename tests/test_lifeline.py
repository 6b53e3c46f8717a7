"""Processes that go with their parent, the guard that cleans up after a killed run, and stop
signals during cleanup (issue 26). Real processes, signalled for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fedrule import interrupts
from fedrule.errors import Terminated
from fedrule.lifeline import MARK, PARENT, Guard, marked_processes
from fedrule.pids import alive, same_process, start_ticks


def _gone(pid: int) -> bool:
    """Dead, or a zombie waiting for its (new) parent to reap it."""
    if not alive(pid):
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _python(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_the_first_stop_signal_raises_and_later_ones_wait_for_the_cleanup(capfd):
    interrupts.reset()
    with pytest.raises(Terminated):
        interrupts.on_signal(signal.SIGTERM)
    assert interrupts.stopping()
    assert interrupts.on_signal(signal.SIGTERM) is None  # no second exception mid-cleanup
    err = capfd.readouterr().err
    assert "stopping (SIGTERM): cleaning up first" in err
    assert "SIGTERM again: still cleaning up" in err
    interrupts.reset()
    with pytest.raises(KeyboardInterrupt) as raised:
        interrupts.on_signal(signal.SIGINT)
    assert not isinstance(raised.value, Terminated)
    interrupts.reset()


def test_a_third_signal_exits_at_once_when_the_cleanup_hangs():
    stuck = _python(
        """
        import os, signal, time
        from fedrule import interrupts
        interrupts.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            print("cleaning up", flush=True)
            while True:  # a cleanup that never ends
                time.sleep(0.1)
        """
    )
    assert stuck.stdout.readline().strip() == "cleaning up"
    assert "stopping (SIGTERM)" in stuck.stderr.readline()
    stuck.send_signal(signal.SIGINT)
    assert "Ctrl-C again: still cleaning up" in stuck.stderr.readline()
    assert stuck.poll() is None  # the second signal waited for the cleanup
    stuck.send_signal(signal.SIGINT)
    assert stuck.wait(10) == 143
    assert "a third time: exiting now" in stuck.stderr.read()


def test_a_stop_signal_inside_a_callback_that_swallows_exceptions_still_stops():
    """The first SIGTERM lands in a ``__del__`` (as in an at-fork hook when Ray forks): Python
    cannot raise there, so it would print a traceback and go on; the run stops all the same,
    without a traceback, and the signal counts once."""
    run = _python(
        """
        import os, signal
        from fedrule import interrupts
        from fedrule.errors import Terminated
        interrupts.install()

        class Finaliser:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)  # handled inside __del__
                for _ in range(1000):
                    pass

        try:
            finaliser = Finaliser()
            del finaliser
            for _ in range(10**8):
                pass
            print("went on", flush=True)
        except Terminated:
            print("stopped", len(interrupts._received), flush=True)
        """
    )
    out, err = run.communicate(timeout=60)
    assert out.split() == ["stopped", "1"], (out, err)
    assert "Traceback" not in err and "ignored" not in err
    assert "stopping (SIGTERM)" in err


def test_a_guard_cleans_up_after_its_parent_is_killed(tmp_path):
    """The parent starts a guard and a marked process (as Ray's agents are), then is SIGKILLed:
    the marked process dies and the folder goes; an unmarked process is left alone."""
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "data.npz").write_bytes(b"every device's data")
    parent = _python(
        f"""
        import os, subprocess, sys, time
        from pathlib import Path
        from fedrule.lifeline import Guard, MARK
        mark = "test-mark-{os.getpid()}"
        guard = Guard.start(mark, [Path({str(folder)!r})])
        marked = subprocess.Popen(["sleep", "300"], env={{**os.environ, MARK: mark}})
        plain = subprocess.Popen(["sleep", "300"])
        print(marked.pid, plain.pid, guard.process.pid, flush=True)
        time.sleep(300)
        """
    )
    marked, plain, guard = map(int, parent.stdout.readline().split())
    try:
        assert marked_processes(f"test-mark-{os.getpid()}") == [marked]
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait(lambda: _gone(marked) and not folder.exists() and _gone(guard))
        assert not _gone(plain)
    finally:
        for pid in (marked, plain):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_released_guard_removes_leftovers_of_a_finished_run(tmp_path):
    folder = tmp_path / "ray"
    folder.mkdir()
    mark = f"test-release-{os.getpid()}"
    guard = Guard.start(mark, [folder])
    leftover = subprocess.Popen(["sleep", "300"], env={**os.environ, MARK: mark})
    try:
        guard.release()
        assert _wait(lambda: leftover.poll() is not None, 5.0)
        assert not folder.exists()
    finally:
        if leftover.poll() is None:
            leftover.kill()
        leftover.wait()


def test_a_sweep_run_gets_sigterm_when_its_sweep_is_sigkilled():
    """``$FEDRULE_PARENT_PID`` (set by a sweep for its runs): PR_SET_PDEATHSIG."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    child_code = (
        "import signal, sys, time\n"
        "from fedrule.lifeline import die_with_parent_from_env\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
        "die_with_parent_from_env()\n"
        "print('armed', flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = _python(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-c", {child_code!r}],
            env={{**os.environ, "{PARENT}": str(os.getpid())}},
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "armed"
        print(child.pid, flush=True)
        time.sleep(300)
        """
    )
    child = int(parent.stdout.readline())
    try:
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait(lambda: _gone(child), 10.0)
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_pid_file_names_one_process_not_a_later_one_with_its_id():
    me = os.getpid()
    assert same_process(me, start_ticks(me))
    if start_ticks(me) is not None:
        assert not same_process(me, start_ticks(me) + 1)
