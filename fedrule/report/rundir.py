"""The run folder: written under a hidden temporary name and renamed into place at the end.

A run works in ``.<name>-<stamp>.<pid>.partial`` under ``--out``. When it finishes, the folder is
renamed to ``<name>-<stamp>`` (a ``-2``, ``-3`` ... suffix if that name is taken meanwhile: the
rename never replaces another run, and never loses this one). A failed or interrupted run
leaves no half-written result folder: its partial folder is removed — unless it holds a
checkpoint (``checkpoint/``), in which case it stays and ``fedrule run --resume PARTIAL``
continues it. Partial folders of killed runs without a checkpoint are removed at the next start.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fedrule.errors import ConfigError
from fedrule.pids import alive

CHECKPOINTS = "checkpoint"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


class RunDir:
    """A run folder under construction. Use as a context manager; ``commit()`` publishes it."""

    def __init__(self, out_root: str | Path, name: str, *, resume: str | Path | None = None):
        self.root = Path(out_root)
        self.committed = False
        self.resumed = resume is not None
        if resume is not None:
            partial = Path(resume)
            base = _partial_base(partial)
            self.root = partial.parent
            self.path = partial
        else:
            base = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.path = self.root / f".{base}.{os.getpid()}.partial"
        self.base = base
        self.final = self.root / base

    def __enter__(self) -> RunDir:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError("is a file, not a folder", path=str(self.root), hint="--out")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create it ({err.strerror})", path=str(self.root)) from None
        remove_stale_partials(self.root)
        if self.resumed:
            adopted = self.root / f".{self.base}.{os.getpid()}.partial"
            os.rename(self.path, adopted)  # claim it: the killed run's pid is gone
            self.path = adopted
        else:
            self._claim()
        return self

    def _claim(self) -> None:
        """Create the partial folder under a name no other run of this process holds."""
        base, suffix = self.base, 1
        while True:
            try:
                self.path.mkdir(parents=False, exist_ok=False)
                return
            except FileExistsError:
                suffix += 1
                self.base = f"{base}-{suffix}"
                self.final = self.root / self.base
                self.path = self.root / f".{self.base}.{os.getpid()}.partial"

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.committed:
            return
        if self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir()):
            sys.stderr.write(
                f"the partial run is kept; continue it with: fedrule run --resume {self.path}\n"
            )
            return
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def file(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a file atomically (a temporary file renamed into place)."""
        path = self.file(name)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(_jsonable(obj), indent=2) + "\n")

    def commit(self) -> Path:
        """Rename the finished folder into place under a name nobody else holds.

        ``os.rename`` onto an existing non-empty folder fails instead of replacing it, so a run
        that finishes second takes the next free suffix. Checkpoints are dropped first: a
        published run is complete."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        suffix = 1
        while True:
            target = self.final if suffix == 1 else self.root / f"{self.base}-{suffix}"
            if not target.exists():
                try:
                    os.rename(self.path, target)
                except OSError as err:
                    if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    self.final, self.committed = target, True
                    return target
            suffix += 1


def _partial_base(partial: Path) -> str:
    """``name-stamp`` of a partial folder ``.name-stamp.pid.partial``."""
    name = partial.name
    parts = name.rsplit(".", 2)
    if not (name.startswith(".") and len(parts) == 3 and parts[2] == "partial"):
        raise ConfigError(
            "expected a partial run folder (.NAME-STAMP.PID.partial)", path=str(partial)
        )
    if not (partial / CHECKPOINTS).is_dir():
        raise ConfigError("holds no checkpoint to resume from", path=str(partial))
    pid = parts[1]
    if pid.isdigit() and int(pid) != os.getpid() and alive(int(pid)):
        raise ConfigError(f"is still being written by process {pid}", path=str(partial))
    return parts[0][1:]


def remove_stale_partials(root: Path) -> None:
    """Remove temporary folders left by killed runs (their process is gone), except those with
    a checkpoint: they can be resumed."""
    for path in root.glob(".*.partial"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not alive(int(pid)) and not (path / CHECKPOINTS).is_dir():
            shutil.rmtree(path, ignore_errors=True)
