"""Processes by id: is the process that left a file or folder behind still running?"""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True if a process with this id exists (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
