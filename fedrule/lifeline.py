"""What a killed process leaves behind, and how it goes with its parent.

- ``die_with_parent``: on Linux, the kernel sends this process SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``): the runs of a sweep stop with the sweep, even a SIGKILLed one.
- ``Guard``: a small process in its own session that waits for its parent to end (or to
  release it) and then kills the processes that carry the parent's mark in their environment
  (``MARK=<mark>``: Ray's daemons, agents and workers inherit it) and removes the folders it was
  given (the device store, Ray's temporary folder). After ``kill -9`` of a run, Ray's
  ``DashboardAgent`` and ``RuntimeEnvAgent`` lived on for about a minute (190 MB) and the
  device store (every device's data) stayed in the temporary folder.
- ``kill_marked``: the same for a mark whose run and guard are both gone (the next run's
  clean-up of what it can prove was a fedrule run's).

``python -m fedrule.lifeline guard MARK [FOLDER...]`` is the guard's entry point; it imports
nothing heavier than the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fedrule.pids import alive

MARK = "FEDRULE_OWNER"
"""The environment variable that marks the processes a run started (value: the run's mark)."""
PARENT = "FEDRULE_PARENT_PID"
"""Set by a sweep for its runs: the process id whose death stops them (``die_with_parent``)."""
_PR_SET_PDEATHSIG = 1
KILL_SECONDS = 10.0


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel for ``signum`` when the parent process dies (Linux); if ``parent`` is
    already gone, send it now. Returns whether the request took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request: the kernel will not tell
        os.kill(os.getpid(), signum)
    return True


def die_with_parent_from_env() -> None:
    """``die_with_parent`` for the parent named in ``$FEDRULE_PARENT_PID`` (a sweep's run);
    the variable is removed so that this process's own children do not inherit it."""
    value = os.environ.pop(PARENT, "")
    if value.isdigit():
        die_with_parent(int(value))


def marked_processes(mark: str) -> list[int]:
    """This user's processes (but this one) whose environment holds ``MARK=<mark>``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = f"\0{MARK}={mark}\0".encode()
    me, uid, found = os.getpid(), os.getuid(), []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ:
            found.append(int(entry.name))
    return found


def kill_marked(mark: str, seconds: float = KILL_SECONDS) -> int:
    """SIGKILL every process marked ``mark`` until none is left (Ray may start a worker while
    its siblings die); returns how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = [pid for pid in marked_processes(mark) if alive(pid)]  # zombies are dead
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.05)
    return len(killed)


class Guard:
    """The guard of one run: ``start`` it before the run creates what it must not leave behind,
    ``release`` it when the run has cleaned up (the guard then removes what is left)."""

    def __init__(self, process: subprocess.Popen | None) -> None:
        self.process = process

    @classmethod
    def start(cls, mark: str, folders: list[Path]) -> Guard:
        command = [sys.executable, "-m", "fedrule.lifeline", "guard", mark]
        command += [str(f) for f in folders]
        env = {k: v for k, v in os.environ.items() if k not in (MARK, PARENT)}
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not killed with the run's process group
                env=env,
            )
        except OSError:
            return cls(None)  # no guard: the next run removes stale stores and Ray folders
        return cls(process)

    def release(self, timeout: float = 30.0) -> None:
        """Tell the guard that the run ended; wait (at most ``timeout``) for its clean-up."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)  # past it, the guard goes on by itself
        self.process = None


def guard(mark: str, folders: list[str]) -> None:
    """Wait until stdin ends (the parent closed it, or died: the kernel closes its end) or the
    parent is gone, then kill the marked processes and remove ``folders``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the run's to handle
    parent = os.getppid()
    while True:
        ready, _, _ = select.select([0], [], [], 1.0)
        if ready:
            try:
                if not os.read(0, 4096):
                    break
            except OSError:
                break
        elif os.getppid() != parent:
            break
    kill_marked(mark)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "guard":
        guard(sys.argv[2], sys.argv[3:])
