"""Small real file systems for fault tests: a tmpfs of a few KiB (a full disk) or a read-only
one, mounted for the test and unmounted after. Needs root (CAP_SYS_ADMIN): skipped otherwise,
with the reason."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int, *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` (whole pages) mounted on ``path`` for the block."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small real file system needs root to mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_bytes}" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def resize(path: Path, size_bytes: int) -> None:
    """Grow (or shrink) a mounted tmpfs: the disk is no longer full."""
    subprocess.run(["mount", "-o", f"remount,size={size_bytes}", str(path)], check=True)


def without_root_override() -> list[str]:
    """A command prefix under which file permissions apply to root too (no CAP_DAC_OVERRIDE),
    or [] when not root (permissions apply anyway); skips when neither is possible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file permissions and setpriv is missing to drop that")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
