"""The template every phase of the federated algorithm follows.

``Phase.run(ctx, state)`` = ``configure`` (choose devices, pack them, build one request per
cohort) -> ``send and receive`` (``ServerContext.exchange``) -> ``aggregate`` (fold the replies
into a result) -> tell the phase observers. A phase reads the run's fixed ``ServerContext`` and
the ``ServerState`` it is given and returns what it changes (a training round: the next state;
a labelling: its metric sums); it never keeps the server's state itself.
``fedrule.algorithm.server.FleetServer`` runs the phases in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.state import ServerState
from fedrule.protocol import Message, NodeFailure

Result = TypeVar("Result")


class Phase(ABC, Generic[Result]):
    what = "phase"  # how logs, errors and observers name it

    def run(self, ctx: ServerContext, state: ServerState) -> Result:
        requests, cohorts = self.configure(ctx, state)
        replies = ctx.exchange(requests, self.what)
        result = self.aggregate(ctx, state, cohorts, replies)
        for observer in ctx.observers:
            observer.on_phase_end(self.what, requests, replies, result)
        return result

    @abstractmethod
    def configure(
        self, ctx: ServerContext, state: ServerState
    ) -> tuple[list[Message], list[np.ndarray]]:
        """The requests of this phase, and the cohort (device numbers) each one addresses."""

    @abstractmethod
    def aggregate(
        self,
        ctx: ServerContext,
        state: ServerState,
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
