"""The template every phase of the federated algorithm follows.

``Phase.run`` = ``configure`` (choose devices, pack them, build one request per cohort) ->
``send and receive`` (the transport) -> ``aggregate`` (fold the replies into the server's state).
Phases are small units; ``fedrule.algorithm.server.FleetServer`` runs them in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from fedrule.protocol import Message, NodeFailure

if TYPE_CHECKING:
    from fedrule.algorithm.server import FleetServer

Result = TypeVar("Result")


class Phase(ABC, Generic[Result]):
    what = "phase"  # how logs and errors name it

    def run(self, server: FleetServer) -> Result:
        requests, cohorts = self.configure(server)
        replies = server.exchange(requests, self.what)
        return self.aggregate(server, cohorts, replies)

    @abstractmethod
    def configure(self, server: FleetServer) -> tuple[list[Message], list[np.ndarray]]:
        """The requests of this phase, and the cohort (device numbers) each one addresses."""

    @abstractmethod
    def aggregate(
        self,
        server: FleetServer,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> Result:
        """Fold the replies (in request order) into a result."""


def payload_assignment(
    cohort: np.ndarray, config_of_device: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For one cohort: the distinct configuration indices it needs (ascending) and, per device,
    which of them it receives."""
    used = np.unique(config_of_device[cohort])
    return used, np.searchsorted(used, config_of_device[cohort])
