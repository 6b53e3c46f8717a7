"""Errors that reach the user as one line (exit code 2), never as a traceback."""

from __future__ import annotations

import difflib
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
