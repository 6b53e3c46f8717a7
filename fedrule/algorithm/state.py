"""What the phases of a run change: the ``ServerState``.

Phases and round callbacks take a state and return a new one (``dataclasses.replace``); nothing
else of the server changes during a run (what stays fixed is the ``ServerContext``). A state
holds the server's array of the method's tables, the server step's state, the clipping norm of
the next round, the training rounds done and their records, the labelling stamp and the
labellings counted as privacy releases, the estimator and its report, the block coverage, the
best validated round, whether early stopping ended training, who trains what in the current
round, and the searched configurations.

``round_state`` is its checkpointable part (``fedrule.algorithm.hooks.RoundState``), and
``from_round_state`` continues from one: everything after a round is determined by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.hooks import RoundState
from fedrule.search.base import SearchResult
from fedrule.search.estimator import PerformanceEstimator


@dataclass(frozen=True, eq=False)
class BestRound:
    """The best validated round so far (0: none), its value and table, and the validations
    since it."""

    round: int = 0
    value: float = float("-inf")
    table: np.ndarray | None = None
    stale: int = 0

    def seen(self, round_number: int, value: float, table: np.ndarray) -> BestRound:
        if value > self.value:
            return BestRound(round_number, value, table, 0)
        return replace(self, stale=self.stale + 1)


@dataclass(frozen=True, eq=False)
class ServerState:
    table: np.ndarray  # the server's array: the method's tables stacked row-wise
    round: int = 0  # training rounds finished
    server_step: dict[str, np.ndarray] = field(default_factory=dict)  # ServerStep.state_dict()
    clip: float = 0.0  # the clipping norm of the next round (adaptive clipping moves it)
    label_stamp: int = 0  # labellings run so far (each draws a fresh device stream)
    # labellings as the privacy accounting counts them: labellings of disjoint devices in one
    # step (a validation or verification split by payload or budget) are one release
    label_releases: int = 0
    estimator: PerformanceEstimator | None = None
    label_report: dict = field(default_factory=dict)  # the last fit's (``label_and_fit``)
    coverage: np.ndarray | None = None  # training weight per (group, block); None: not kept
    best: BestRound = field(default_factory=BestRound)
    stopped: bool = False  # early stopping ended training (a resumed run trains no more)
    history: tuple[dict, ...] = ()  # every round's record (rounds-seed*.csv) so far
    assignment: Assignment | None = None  # who trains what in the current round
    searches: dict[int, SearchResult] = field(default_factory=dict)  # per distinct budget
    every_device: dict[int, dict[str, float]] = field(default_factory=dict)  # eval.every_device

    @property
    def record(self) -> dict:
        """The last round's record."""
        return self.history[-1]

    def with_record(self, record: dict) -> ServerState:
        """This state with the last round's record replaced."""
        return replace(self, history=(*self.history[:-1], record))

    def labelling(self, release: bool = True) -> ServerState:
        """This state after one more labelling (``release``: counted as a privacy release)."""
        return replace(
            self,
            label_stamp=self.label_stamp + 1,
            label_releases=self.label_releases + int(release),
        )

    def round_state(self, seed: int) -> RoundState:
        """The checkpointable part, as round hooks see it."""
        best, estimator = self.best, self.estimator
        return RoundState(
            round=self.round,
            seed=seed,
            table=self.table,
            server_state=self.server_step,
            label_stamp=self.label_stamp,
            label_releases=self.label_releases,
            record=self.history[-1] if self.history else {},
            history=list(self.history),
            best_round=best.round,
            best_value=best.value,
            best_stale=best.stale,
            best_table=best.table,
            estimator=None if estimator is None else estimator.state_dict(),
            coverage=None if self.coverage is None else self.coverage.copy(),
            stopped=self.stopped,
        )

    def from_round_state(self, saved: RoundState) -> ServerState:
        """This (initial) state continued from a round hook's state (a checkpoint). The
        coverage is restored where this run keeps it; the clip stays the caller's to derive
        (``ServerPrivacy.clip_after``)."""
        estimator = saved.estimator
        keep = self.coverage is not None and saved.coverage is not None
        return replace(
            self,
            table=np.array(saved.table, dtype=np.float32),
            round=saved.round,
            server_step=dict(saved.server_state),
            label_stamp=saved.label_stamp,
            label_releases=saved.label_releases,
            estimator=None if estimator is None else PerformanceEstimator.from_state(estimator),
            coverage=np.array(saved.coverage, dtype=np.float64) if keep else self.coverage,
            best=BestRound(saved.best_round, saved.best_value, saved.best_table, saved.best_stale),
            stopped=saved.stopped,
            history=tuple(saved.history),
        )
