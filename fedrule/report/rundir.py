"""The run folder: written under a hidden temporary name and renamed into place at the end.

A run works in ``.<name>-<stamp>.<pid>.partial`` under ``--out``. When it finishes, the folder is
renamed to ``<name>-<stamp>`` (a ``-2``, ``-3`` ... suffix if that name is taken meanwhile: the
rename never replaces another run, and never loses this one). A failed or interrupted run
leaves no half-written result folder: its partial folder is removed — unless it holds a
checkpoint (``checkpoint/``), in which case it stays and ``fedrule run --resume PARTIAL``
continues it. Partial folders of killed runs without a checkpoint are removed at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fedrule.errors import ConfigError, DiskError, FedruleError, disk_error, write_failure
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
            remove_stale_partials(self.root)
            if self.resumed:
                adopted = self.root / f".{self.base}.{os.getpid()}.partial"
                os.rename(self.path, adopted)  # claim it: the killed run's pid is gone
                self.path = adopted
            else:
                self._claim()
        except OSError as err:
            failure = self._disk_error(err)
            if failure is not None:
                raise failure from None
            raise ConfigError(f"cannot create it ({err.strerror})", path=str(self.root)) from None
        return self

    def _disk_error(self, exc: BaseException | None) -> DiskError | None:
        return disk_error(exc, self.root, "the run folder", setting="--out")

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

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self.committed:
            return
        failure = self._failed_write(exc)
        if self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir()):
            sys.stderr.write(
                f"the partial run is kept; continue it with: fedrule run --resume {self.path}\n"
            )
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        if failure is not None:
            raise failure from None

    def _failed_write(self, exc: BaseException | None) -> DiskError | None:
        """A write into the run folder that failed (disk full, read-only, no permission) as a
        one-line error: one that names a file under ``--out``, or a full disk without a file
        name (matplotlib, numpy) while the run folder's disk is (almost) full."""
        if exc is None or isinstance(exc, FedruleError):
            return None
        failure = write_failure(exc)
        if failure is None:
            return None
        if failure.filename is not None:
            inside = Path(os.path.abspath(failure.filename)).is_relative_to(self.root.absolute())
            return self._disk_error(exc) if inside else None
        if failure.errno in (errno.ENOSPC, errno.EDQUOT) and _almost_full(self.root):
            return self._disk_error(exc)
        return None

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def file(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a file atomically (a temporary file renamed into place)."""
        with self.writing(name) as handle:
            handle.write(text.encode("utf-8"))
        return self.path / name

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[BinaryIO]:
        """A binary file to write ``name`` into (``torch.save(obj, handle)``), renamed into place
        when the block ends. A failed write leaves no temporary file; a full disk, a read-only
        folder or a denied permission is a one-line ``DiskError`` naming ``--out``."""
        path = self.file(name)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as handle:
                yield handle
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            failure = self._disk_error(exc)
            if failure is not None:
                raise failure from None
            raise

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


def _almost_full(folder: Path) -> bool:
    """Less than 1 MiB (or 0.1%) left on the disk of ``folder``."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    free = stat.f_bavail * stat.f_frsize
    return free < max(1 << 20, stat.f_blocks * stat.f_frsize // 1000)


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
