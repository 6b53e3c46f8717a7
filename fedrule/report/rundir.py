"""The run folder: written under a hidden temporary name and renamed into place at the end.

A run works in ``.<name>-<stamp>.<pid>.partial`` under ``--out``. Every file is written
atomically (a temporary copy renamed into place), and ``metrics.json`` is written last: a
partial folder that holds it is *complete*. The commit renames the complete folder to
``<name>-<stamp>`` (a ``-2``, ``-3`` ... suffix if that name is taken meanwhile: the rename never
replaces another run, and never loses this one) and then removes its checkpoints.

No kill between two steps loses or hides a finished run:

- killed before ``metrics.json``: ``fedrule run --resume PARTIAL`` continues the partial from
  its checkpoint (``checkpoint/``: finished seeds, the last round). One without a checkpoint (a
  centralised run, or a federated one before its first checkpoint) holds nothing worth keeping:
  an error, SIGINT or SIGTERM remove it at once, and after a SIGKILL the next start in that
  ``--out`` removes it (until then ``--resume`` starts it over);
- killed after ``metrics.json``, before the rename: the partial is complete, and ``--resume``
  publishes it without computing anything; no later run removes it;
- killed after the rename, before the checkpoints are removed: the run is published, and the
  next start in that ``--out`` removes the leftover ``checkpoint/`` folder. SIGINT or SIGTERM
  during the commit wait for it to end, and are then ignored: the run is finished.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fedrule import killpoints
from fedrule.errors import ConfigError, DiskError, FedruleError, disk_error, write_failure
from fedrule.pids import alive

CHECKPOINTS = "checkpoint"
COMPLETE = "metrics.json"  # written last: a partial folder that holds it is complete


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
            if self.resumed:  # claim it first: the killed run's pid is gone
                adopted = self.root / f".{self.base}.{os.getpid()}.partial"
                try:
                    os.rename(self.path, adopted)
                except FileNotFoundError:
                    raise ConfigError(
                        "is gone: another run resumed it", path=str(self.path)
                    ) from None
                self.path = adopted
            remove_stale_partials(self.root)
            remove_leftover_checkpoints(self.root)
            if not self.resumed:
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
        if _resumable(self.path):
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

    @property
    def complete(self) -> bool:
        """Every file is written (``metrics.json``, the last one, is there): only the commit
        is left."""
        return (self.path / COMPLETE).is_file()

    def file(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write a file atomically (a temporary file renamed into place)."""
        path = self.file(name)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            killpoints.reached("temporary written")
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)  # a full disk: no temporary file left behind
            failure = self._disk_error(exc)
            if failure is not None:
                raise failure from None
            raise
        killpoints.reached(killpoints.file_step(name))
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(_jsonable(obj), indent=2) + "\n")

    def write_with(self, name: str, writer: Callable[[Path], object]) -> Path | None:
        """Write a file atomically with ``writer(path)`` (``torch.save``, ``savefig``): into a
        temporary folder under the file's own name (``torch.save`` records the name in the
        file, ``savefig`` reads the format from it), renamed into place. None if ``writer``
        wrote nothing."""
        path = self.file(name)
        folder = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(folder, ignore_errors=True)  # left by a killed writer
        try:
            folder.mkdir()
            writer(folder / path.name)
            if not (folder / path.name).is_file():
                return None
            killpoints.reached("temporary written")
            os.replace(folder / path.name, path)
        except BaseException as exc:
            failure = self._disk_error(exc)
            if failure is not None:
                raise failure from None
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        killpoints.reached(killpoints.file_step(name))
        return path

    def commit(self) -> Path:
        """Rename the complete folder into place under a name nobody else holds, then drop its
        checkpoints (a published run is complete; a kill in between leaves them to the next
        start, ``remove_leftover_checkpoints``).

        ``os.rename`` onto an existing non-empty folder fails instead of replacing it, so a run
        that finishes second takes the next free suffix."""
        if not self.complete:
            raise RuntimeError(f"{self.path} is not complete: {COMPLETE} is written last")
        with _signals_held() as received:
            self.final = self._publish()
            self.committed = True
            killpoints.reached("published")
            shutil.rmtree(self.final / CHECKPOINTS, ignore_errors=True)
        if received:
            sys.stderr.write(f"signal {received[0]} came after the run was published: ignored\n")
        return self.final

    def _publish(self) -> Path:
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


@contextmanager
def _signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM that arrive inside the block are recorded, not raised: the block
    publishes a finished run, which an interruption must not leave half-done (in the main
    thread only: elsewhere Python runs no signal handlers)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in held}
    for sig in held:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _resumable(path: Path) -> bool:
    """A partial folder worth keeping: complete, or holding a checkpoint."""
    checkpoints = path / CHECKPOINTS
    has_checkpoint = checkpoints.is_dir() and any(checkpoints.iterdir())
    return has_checkpoint or (path / COMPLETE).is_file()


def _partial_base(partial: Path) -> str:
    """``name-stamp`` of a partial folder ``.name-stamp.pid.partial``."""
    name = partial.name
    parts = name.rsplit(".", 2)
    if not (name.startswith(".") and len(parts) == 3 and parts[2] == "partial"):
        raise ConfigError(
            "expected a partial run folder (.NAME-STAMP.PID.partial)", path=str(partial)
        )
    if not (partial / "scenario.yaml").is_file():
        raise ConfigError("is not a partial run folder (no scenario.yaml)", path=str(partial))
    pid = parts[1]
    if pid.isdigit() and int(pid) != os.getpid() and alive(int(pid)):
        raise ConfigError(f"is still being written by process {pid}", path=str(partial))
    return parts[0][1:]


def remove_stale_partials(root: Path) -> None:
    """Remove temporary folders left by killed runs (their process is gone), except those
    worth resuming: complete ones, and those with a checkpoint."""
    for path in root.glob(".*.partial"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not alive(int(pid)) and not _resumable(path):
            shutil.rmtree(path, ignore_errors=True)


def remove_leftover_checkpoints(root: Path) -> None:
    """Remove the checkpoints that a commit killed after its rename left in a published run
    folder (complete: ``metrics.json`` is there). A commit still under way removes them too:
    both removals are harmless."""
    for checkpoints in root.glob(f"*/{CHECKPOINTS}"):
        run = checkpoints.parent
        if not run.name.startswith(".") and (run / COMPLETE).is_file():
            shutil.rmtree(checkpoints, ignore_errors=True)
