"""``decaying-fedavg``: FedAvg whose server learning rate shrinks by ``decay`` every round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.algorithm.aggregation import RowBlockAggregator
from fedrule.algorithm.server_step import ServerOptimizer
from fedrule.scenario.validate import doc, require


@dataclass(frozen=True)
class DecayOptions:
    decay: float = doc("(float) the server learning rate's factor per round, in (0, 1]", 0.5)

    def check(self, path: str) -> None:
        require(0 < self.decay <= 1, "must lie in (0, 1]", path=f"{path}.decay")


@dataclass
class DecayingFedAvg:
    lr: float
    decay: float
    steps: int = 0  # rounds stepped so far: the checkpointed state

    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        new = aggregate.apply(table, self.lr * self.decay**self.steps)
        self.steps += 1
        return new

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"steps": np.array(self.steps)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.steps = int(state["steps"]) if "steps" in state else 0


SERVER_OPTIMIZER = ServerOptimizer(
    lambda federated, options: DecayingFedAvg(federated.server_lr, options.decay), DecayOptions
)
