"""Round hooks: called at the end of every training round with the server's state.

``RoundState`` holds everything needed to continue the run after that round: the item table,
the server step's state, the round number, the labelling stamp (every server-side random stream
is derived from the seed, the round and the stamp, so these determine them), the best validated
round so far, the estimator if one was fitted (budgeted refits), the block coverage so far, the
rounds' records, and whether training stopped early after it (``federated.patience``: a resumed
run then trains no further round). Checkpoints and live plots are round hooks;
``FleetServer(resume=state)`` continues from one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class RoundState:
    round: int
    seed: int
    table: np.ndarray
    server_state: dict[str, np.ndarray] = field(default_factory=dict)
    label_stamp: int = 0  # labellings run so far (each draws a fresh device stream)
    label_releases: int = 0  # of them, releases in the privacy accounting (see FleetServer)
    record: dict = field(default_factory=dict)  # this round's row of rounds-seed*.csv
    history: list[dict] = field(default_factory=list)  # every round's row so far
    best_round: int = 0
    best_value: float = float("-inf")
    best_stale: int = 0
    best_table: np.ndarray | None = None
    estimator: dict[str, Any] | None = None  # PerformanceEstimator.state_dict()
    coverage: np.ndarray | None = None  # training weight per (group, block) so far
    stopped: bool = False  # training stopped early after this round (federated.patience)

    def to_saveable(self) -> dict[str, Any]:
        """Plain tensors, numbers and strings: ``torch.load(weights_only=True)`` reads it."""
        out: dict[str, Any] = {
            "round": self.round,
            "seed": self.seed,
            "label_stamp": self.label_stamp,
            "label_releases": self.label_releases,
            "table": _tensor(self.table),
            "server_state": {
                k: torch.from_numpy(np.asarray(v)) for k, v in self.server_state.items()
            },
            "history": json.dumps(self.history, allow_nan=True),
            "best_round": self.best_round,
            "best_value": self.best_value,
            "best_stale": self.best_stale,
            "estimator": self.estimator,
            "stopped": self.stopped,
        }
        if self.best_table is not None:
            out["best_table"] = _tensor(self.best_table)
        if self.coverage is not None:
            out["coverage"] = _tensor(self.coverage)
        return out

    @staticmethod
    def from_saveable(saved: dict[str, Any]) -> RoundState:
        history = json.loads(saved["history"])
        best = saved.get("best_table")
        coverage = saved.get("coverage")
        return RoundState(
            round=int(saved["round"]),
            seed=int(saved["seed"]),
            table=saved["table"].numpy(),
            server_state={k: v.numpy() for k, v in saved["server_state"].items()},
            label_stamp=int(saved["label_stamp"]),
            label_releases=int(saved.get("label_releases", saved["label_stamp"])),
            record=history[-1] if history else {},
            history=history,
            best_round=int(saved["best_round"]),
            best_value=float(saved["best_value"]),
            best_stale=int(saved["best_stale"]),
            best_table=None if best is None else best.numpy(),
            estimator=saved["estimator"],
            coverage=None if coverage is None else coverage.numpy(),
            stopped=bool(saved.get("stopped", False)),
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array))  # a copy: the server moves on


class RoundHook(Protocol):
    def __call__(self, state: RoundState) -> None: ...
