"""Errors that reach the user as one line (exit code 2), never as a traceback."""

from __future__ import annotations

import difflib
import errno
import os
import re
from collections.abc import Iterable


class FedruleError(Exception):
    """A user-facing error: what is wrong, where (a dotted config path or a file), and a hint.

    ``category`` groups errors for callers and tests (``config``, ``data``, ``budget``, ``run``).
    """

    category = "run"

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.path = path
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}".replace("\n", " ")


class ConfigError(FedruleError):
    """A scenario file or override is invalid."""

    category = "config"


class DataError(FedruleError):
    """A dataset cannot be found, fetched, verified or parsed."""

    category = "data"


class BudgetError(FedruleError):
    """A memory budget cannot be met or parsed."""

    category = "budget"


class DiskError(FedruleError):
    """A folder cannot be written: its disk is full, it is read-only, or permission is denied."""

    category = "disk"


_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is too large for its file system",
    errno.EROFS: "is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's tofile on a full disk


def write_failure(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` behind a failed write, searched along the exception's causes (torch
    wraps it in a RuntimeError), or None when ``exc`` is no write failure."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError):
            if exc.errno in _WRITE_FAILURES:
                return exc
            if exc.errno is None and _SHORT_WRITE.search(str(exc)):
                return OSError(errno.ENOSPC, "No space left on device")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def disk_error(
    exc: BaseException | None,
    folder: str | os.PathLike,
    what: str,
    *,
    key: str | None = None,
    setting: str | None = None,
    then: str | None = None,
) -> DiskError | None:
    """The one-line error of a write into ``folder`` (of ``what``: "the run folder") that failed
    with ``exc``, or None when ``exc`` is no write failure. ``key`` names the setting that chose
    the folder (``engine.store_dir``; the error names the folder either way); ``setting`` is what
    to change instead (``--out``), ``then`` what to do after (``fedrule run --resume ...``)."""
    failure = write_failure(exc)
    if failure is None:
        return None
    reason = _WRITE_FAILURES[failure.errno]
    full = failure.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    message = f"{reason}: " + (f"no space left for {what}" if full else f"cannot write {what}")
    if key is not None:
        message += f" in {os.fspath(folder)}"
    fixes = (["free space there"] if full else []) + (
        [f"choose another {setting}"] if setting else []
    )
    hint = ", or ".join(fixes) + (f", then {then}" if then else "")
    return DiskError(message, path=key or os.fspath(folder), hint=hint or None)


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` (for 'did you mean ...?' hints), or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the nearest candidate, or listing the valid ones."""
    candidates = sorted(candidates)
    best = nearest(word, candidates)
    if best is not None:
        return f"did you mean '{best}'?"
    return "expected one of: " + ", ".join(candidates)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout`` and batch schedulers send): handled like Ctrl-C, exit 143.

    ``received`` stays set once raised, because frameworks on the way up (click, typer) turn
    any KeyboardInterrupt into their own abort."""

    received = False

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        Terminated.received = True
