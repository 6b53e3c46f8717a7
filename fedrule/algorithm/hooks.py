"""Round hooks: called at the end of every training round with the server's state.

``RoundState`` holds everything needed to continue the run from that round: the item table, the
server step's state, the round number and the server's random state (every server-side stream
is derived from the seed and the round, so these determine it). Checkpoints and live plots are
round hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RoundState:
    round: int
    seed: int
    table: np.ndarray
    server_state: dict[str, np.ndarray] = field(default_factory=dict)
    label_stamp: int = 0  # labellings run so far (each draws a fresh device stream)
    record: dict = field(default_factory=dict)  # the round's row of rounds-seed*.csv

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (``np.savez``-able, ``torch.load(weights_only=True)``-able)."""
        out = {
            "round": np.array(self.round),
            "seed": np.array(self.seed),
            "label_stamp": np.array(self.label_stamp),
            "table": self.table,
        }
        out.update({f"server.{k}": v for k, v in self.server_state.items()})
        return out

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray]) -> RoundState:
        return RoundState(
            round=int(arrays["round"]),
            seed=int(arrays["seed"]),
            table=np.asarray(arrays["table"]),
            server_state={
                k.removeprefix("server."): np.asarray(v)
                for k, v in arrays.items()
                if k.startswith("server.")
            },
            label_stamp=int(arrays["label_stamp"]),
        )


class RoundHook(Protocol):
    def __call__(self, state: RoundState) -> None: ...
