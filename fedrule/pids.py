"""Processes by id: is the process that left a file or folder behind still running (the same
one, not a later process that got its id)?"""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True if a process with this id exists (also one of another user) and is not a zombie
    (dead, waiting for its parent to collect its exit code)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot, Linux ``/proc``), or None if unknown:
    with the id, it names a process even after the id is reused."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def same_process(pid: int, ticks: int | None) -> bool:
    """True if process ``pid`` is alive and (where known) started at ``ticks``."""
    if not alive(pid):
        return False
    now = start_ticks(pid)
    return ticks is None or now is None or now == ticks


def write_pid_file(path: str | os.PathLike, pid: int) -> None:
    """``path`` names process ``pid`` (its id and start time)."""
    ticks = start_ticks(pid)
    with open(path, "w") as handle:
        handle.write(f"{pid} {'' if ticks is None else ticks}\n")


def read_pid_file(path: str | os.PathLike) -> int | None:
    """The id in a pid file if that process still runs (the same one: start time checked)."""
    try:
        with open(path) as handle:
            parts = handle.read().split()
    except OSError:
        return None
    if not parts or not parts[0].isdigit():
        return None
    ticks = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return int(parts[0]) if same_process(int(parts[0]), ticks) else None
