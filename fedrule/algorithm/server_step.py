"""The server's step on the aggregate: from summed device updates to the next item table.

``ServerStep`` is the server half of the update pipeline (the device half, per device and before
any sum, is ``fedrule.device.update``): server optimisers and server-side noise go here. Each
keeps its state in ``state_dict`` so that a round hook can checkpoint it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fedrule.algorithm.aggregation import RowBlockAggregator


class ServerStep(Protocol):
    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        """The next table (a new array); raises ``DivergedError`` if it is not finite."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...


@dataclass
class FedAvg:
    """Row- and block-wise FedAvg with a server learning rate (stateless)."""

    server_lr: float = 1.0

    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        return aggregate.apply(table, self.server_lr)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass
