"""Named steps of a run where a test can kill it: fault injection at a step, not by timing.

``reached(step)`` marks a step. When ``FEDRULE_KILL_AT`` names it, the process sends itself a
signal there: ``FEDRULE_KILL_AT=STEP[:N][:SIGNAL]`` kills at the ``N``-th time (default the
first) this process reaches ``STEP``, with ``SIGNAL`` ``KILL`` (default), ``TERM`` or ``INT``.
``FEDRULE_KILL_AT="round checkpoint:3:TERM"`` sends SIGTERM after the third round's checkpoint.
The variable is read once, at the first step; unset, a step costs one comparison.

``STEPS`` lists every step in run order; ``tests/test_killpoints.py`` checks that a tiny
federated and a tiny centralised run reach exactly these, so the list cannot drift from the
code, and ``tests/test_kill_resume.py`` kills a run at each of them.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fedrule.errors import ConfigError

ENV = "FEDRULE_KILL_AT"

STEPS: tuple[str, ...] = (
    # a run folder's first file
    "write scenario.yaml",
    # a federated seed
    "popularity count",  # the server has the item counts
    "labelling",  # a labelling (validation, estimator labels) has folded one cohort's reply
    "checkpoint write",  # a checkpoint's temporary file is written, not yet renamed into place
    "round checkpoint",  # a training round's checkpoint is in place
    "estimator fit",  # the estimator is fitted (federated labelling, centralised RULE)
    "search",  # every budget's configuration is searched
    "dispatch",  # the dispatch has folded one cohort's test reports
    # a federated seed's files, then the seed is marked done and its round checkpoint dropped
    "write rounds-seed*.csv",
    "write devices-seed*.csv",
    "write coverage-seed*.csv",
    "write model-seed*.pt",
    "write checkpoint/seed*.json",
    "checkpoint cleared",
    "write log.txt",
    # a centralised seed
    "epoch",  # a centralised training epoch has ended
    "write history-seed*.csv",
    "write users-seed*.csv",
    # the run's files
    "write rule.csv",
    "write rule.json",
    "write quality_vs_memory.png",
    "write tiers.csv",
    "write convergence.png",
    "write coverage.png",
    "write results.csv",
    "write tiers.png",
    "temporary written",  # any file's temporary copy is written, not yet renamed into place
    "write metrics.json",  # the last file: the partial folder is complete
    # the commit
    "published",  # renamed into place; its checkpoint folder not yet removed
)

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}


@dataclass(frozen=True)
class KillAt:
    step: str
    nth: int
    signal: signal.Signals


_UNREAD = object()
_target: object = _UNREAD  # KillAt | None once read
_counts: dict[str, int] = {}
_recorded: list[list[str]] = []


def parse(spec: str) -> KillAt:
    """``STEP[:N][:SIGNAL]`` as a ``KillAt``; a one-line error naming the variable if not."""
    step, *rest = spec.split(":")
    where = {"path": ENV, "hint": "STEP[:N][:KILL|TERM|INT], STEP one of fedrule.killpoints.STEPS"}
    if step not in STEPS:
        raise ConfigError(f"unknown step {step!r}", **where)
    nth, sig = 1, signal.SIGKILL
    for part in rest:
        if part.isdigit() and int(part) >= 1:
            nth = int(part)
        elif part.upper() in SIGNALS:
            sig = SIGNALS[part.upper()]
        else:
            raise ConfigError(f"expected a count >= 1 or a signal, got {part!r}", **where)
    return KillAt(step, nth, sig)


def reached(step: str) -> None:
    """The run has reached ``step`` (one of ``STEPS``)."""
    global _target
    if _recorded:
        for steps in _recorded:
            steps.append(step)
    if _target is None:
        return
    if _target is _UNREAD:
        spec = os.environ.get(ENV, "")
        _target = parse(spec) if spec else None
        if _target is None:
            return
    assert isinstance(_target, KillAt)
    if step != _target.step:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] == _target.nth:
        os.kill(os.getpid(), _target.signal)


def file_step(name: str) -> str:
    """The step of writing run-folder file ``name``: ``write`` and the name, seed numbers
    as ``*`` (``rounds-seed3.csv``: ``write rounds-seed*.csv``)."""
    return "write " + re.sub(r"seed\d+", "seed*", name)


@contextmanager
def recording() -> Iterator[list[str]]:
    """Every step reached inside the block, in order (tests)."""
    steps: list[str] = []
    _recorded.append(steps)
    try:
        yield steps
    finally:
        _recorded.remove(steps)
