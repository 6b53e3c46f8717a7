"""What every phase of a run reads and no phase changes: the ``ServerContext``.

The scenario, the seed, the fleet's registration data, the transport (behind ``exchange``), the
event sink, the phase observers, the DP mechanisms and the server step; after the popularity
count, the counted popularity, the elastic layout formed from it and the method's tables. What
the phases change is the ``ServerState`` (``fedrule.algorithm.state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from fedrule.algorithm.dp_state import ServerPrivacy
from fedrule.algorithm.server_step import ServerStep
from fedrule.algorithm.tables import ServerTables
from fedrule.algorithm.transport import Transport
from fedrule.errors import FedruleError
from fedrule.events import Events
from fedrule.model.codec import elastic_codec
from fedrule.model.elastic import ElasticLayout
from fedrule.protocol import Message, NodeFailure
from fedrule.scenario.schema import Scenario


@dataclass(frozen=True, eq=False)
class FleetRegistry:
    """What the server legitimately knows of the fleet: its size, and each device's budget and
    tier (devices register them), plus the catalogue size."""

    n_items: int
    budget_bytes: np.ndarray
    tier: np.ndarray
    tier_names: tuple[str, ...]

    @property
    def num_devices(self) -> int:
        return int(self.budget_bytes.size)


class PhaseObserver(Protocol):
    """Told of every phase once it has aggregated its replies (tests, live views): the phase's
    name (``Phase.what``: "training round 3", "validation 2", "labelling", "verification",
    "dispatch", ...), its requests, the replies in request order, and what it returned."""

    def on_phase_end(
        self,
        name: str,
        requests: Sequence[Message],
        replies: Sequence[Message | NodeFailure],
        result: Any,
    ) -> None: ...


@dataclass(frozen=True, eq=False)
class ServerContext:
    scenario: Scenario
    seed: int
    fleet: FleetRegistry
    transport: Transport
    events: Events
    dp: ServerPrivacy
    server_step: ServerStep  # stateless between rounds: its state is ServerState.server_step
    observers: tuple[PhaseObserver, ...] = ()
    popularity: np.ndarray | None = None  # set by ``counted``
    codec: ElasticLayout | None = None  # the elastic layout formed from the popularity
    tables: ServerTables | None = None  # the method's tables (``with_tables``)

    def counted(self, popularity: np.ndarray) -> ServerContext:
        """This context after the popularity count: the popularity and the elastic layout."""
        return replace(
            self, popularity=popularity, codec=elastic_codec(self.scenario.model, popularity)
        )

    def with_tables(self, tables: ServerTables) -> ServerContext:
        return replace(self, tables=tables)

    def exchange(self, requests: list[Message], what: str) -> list[Message | NodeFailure]:
        """Send and receive; log the first node failure; fail if every node failed."""
        replies = self.transport.exchange(requests, what)
        failed = [r for r in replies if isinstance(r, NodeFailure)]
        if failed:
            self.events.message(f"{what}: {len(failed)} node(s) failed: {failed[0].reason}")
        if replies and len(failed) == len(replies):
            raise FedruleError(f"{what}: every node failed: {failed[0].reason}")
        return replies
