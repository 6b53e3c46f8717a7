"""Popularity count: devices report their training item counts; the server adds them up and
forms item groups from the total (the server never reads device data). Under secure aggregation
each device's histogram arrives masked and the server unmasks only each request's sum. Under
``privacy.count_noise_multiplier`` the server noises the total (``fedrule.algorithm.dp_state``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from fedrule import killpoints
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.phase import Phase
from fedrule.algorithm.state import ServerState
from fedrule.errors import FedruleError
from fedrule.privacy import secagg
from fedrule.protocol import CountReply, CountRequest, Message, NodeFailure


class PopularityCount(Phase[np.ndarray]):
    what = "popularity count"

    def configure(
        self, ctx: ServerContext, state: ServerState
    ) -> tuple[list[Message], list[np.ndarray]]:
        cohorts = ctx.transport.pack(np.arange(ctx.fleet.num_devices))
        return [CountRequest(devices=c) for c in cohorts], cohorts

    def aggregate(
        self,
        ctx: ServerContext,
        state: ServerState,
        cohorts: list[np.ndarray],
        replies: Sequence[Message | NodeFailure],
    ) -> np.ndarray:
        n_items = ctx.fleet.n_items
        secure = secagg.params_of(ctx.scenario.privacy)
        total = np.zeros(n_items, dtype=np.int64)
        for reply in replies:
            if isinstance(reply, NodeFailure):
                raise FedruleError(f"a node failed to count popularity: {reply.reason}")
            out = cast(CountReply, reply)
            if secure is None:
                total += out.counts
            else:
                upload = secagg.MaskedUpload.from_reply(out)
                total += secagg.decode_ints(secagg.unmask_sum(upload, n_items, secure))
        total = ctx.dp.count(total)  # noised under privacy.count_noise_multiplier
        killpoints.reached("popularity count")
        return total
