"""Popularity count: devices report their training item counts; the server adds them up and
forms item groups from the total (the server never reads device data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from fedrule.algorithm.phase import Phase
from fedrule.errors import FedruleError
from fedrule.protocol import CountReply, CountRequest, Message, NodeFailure

if TYPE_CHECKING:
    from fedrule.algorithm.server import FleetServer


class PopularityCount(Phase[np.ndarray]):
    what = "popularity count"

    def configure(self, server: FleetServer) -> tuple[list[Message], list[np.ndarray]]:
        cohorts = server.transport.pack(np.arange(server.fleet.num_devices))
        return [CountRequest(devices=c) for c in cohorts], cohorts

    def aggregate(
        self,
        server: FleetServer,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> np.ndarray:
        total = np.zeros(server.fleet.n_items, dtype=np.int64)
        for reply in replies:
            if isinstance(reply, NodeFailure):
                raise FedruleError(f"a node failed to count popularity: {reply.reason}")
            total += cast(CountReply, reply).counts
        return total
