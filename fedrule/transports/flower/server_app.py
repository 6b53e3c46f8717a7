"""The Flower ServerApp: runs the federated algorithm over Flower's Message API.

``FlowerTransport`` is the algorithm's ``Transport`` on a Flower ``Grid``: cohort i goes to node
i (nodes are interchangeable: any node simulates any device), replies are collected until all
arrived, the round timed out (stragglers count as failed) or the run is stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from fedrule.algorithm.packing import Packer
from fedrule.algorithm.server import FleetServer
from fedrule.algorithm.transport import Stopped
from fedrule.errors import FedruleError
from fedrule.events import Events
from fedrule.protocol import REPLIES, Kind, NodeFailure
from fedrule.protocol import Message as ProtocolMessage
from fedrule.transports.flower.records import from_records, to_records


class FlowerTransport:
    def __init__(
        self,
        grid: Grid,
        packer: Packer,
        num_nodes: int,
        timeout_s: float,
        stop: threading.Event,
        events: Events,
    ) -> None:
        self.grid, self.packer, self.timeout_s = grid, packer, timeout_s
        self.stop, self.events = stop, events
        self.nodes = self._discover(num_nodes)

    def _discover(self, num_nodes: int) -> list[int]:
        deadline = time.time() + self.timeout_s
        while len(list(self.grid.get_node_ids())) < num_nodes:
            if self.stop.is_set():
                raise Stopped
            if time.time() > deadline:
                raise FedruleError("the simulation engine started no nodes in time")
            time.sleep(0.02)
        return sorted(self.grid.get_node_ids())

    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        return self.packer(devices)

    def exchange(
        self, requests: Sequence[ProtocolMessage], what: str
    ) -> list[ProtocolMessage | NodeFailure]:
        """Send, collect; resend what hit a worker that Ray was restarting (a worker process
        died: the message it held fails, the others are retried)."""
        if len(requests) > len(self.nodes):
            raise FedruleError(f"{what}: {len(requests)} cohorts for {len(self.nodes)} nodes")
        replies = self._exchange_once(requests, what)
        for attempt in range(RETRIES):
            again = [i for i, r in enumerate(replies) if _restarting(r)]
            if not again:
                break
            time.sleep(RETRY_WAIT_S * 2**attempt)  # a new worker process takes seconds to start
            retried = self._exchange_once([requests[i] for i in again], what)
            for i, reply in zip(again, retried, strict=True):
                replies[i] = reply
        return replies

    def _exchange_once(
        self, requests: Sequence[ProtocolMessage], what: str
    ) -> list[ProtocolMessage | NodeFailure]:
        messages = [
            Message(to_records(r.to_wire()), node, r.kind.value)
            for r, node in zip(requests, self.nodes, strict=False)
        ]
        ids = list(self.grid.push_messages(messages))
        position = {message_id: i for i, message_id in enumerate(ids)}
        replies: list[ProtocolMessage | NodeFailure] = [
            NodeFailure(f"no reply within {self.timeout_s:g} s")
        ] * len(requests)
        pending = set(ids)
        deadline = time.time() + self.timeout_s
        while pending:
            if self.stop.is_set():
                raise Stopped
            for reply in self.grid.pull_messages(pending):
                i = position[reply.metadata.reply_to_message_id]
                pending.discard(reply.metadata.reply_to_message_id)
                replies[i] = _decode(reply, requests[i].kind)
            if pending and time.time() > deadline:
                if len(pending) == len(ids):
                    raise FedruleError(
                        f"{what}: none of {len(ids)} nodes answered within {self.timeout_s:g} s",
                        path="engine.round_timeout",
                    )
                self.events.message(  # stragglers are dropped, as a real server would
                    f"{what}: {len(pending)} of {len(ids)} nodes did not answer within "
                    f"{self.timeout_s:g} s and count as failed"
                )
                break
            if pending:
                time.sleep(0.005)
        return replies


RETRIES = 5
RETRY_WAIT_S = 1.0


def _restarting(reply: ProtocolMessage | NodeFailure) -> bool:
    return isinstance(reply, NodeFailure) and "ActorUnavailableError" in reply.reason


def _decode(reply: Message, kind: Kind) -> ProtocolMessage | NodeFailure:
    if reply.has_error():
        return NodeFailure(reply.error.reason)
    return REPLIES[kind].from_wire(from_records(reply.content))


def build_server_app(
    make_server: Callable[[FlowerTransport], FleetServer],
    packer: Packer,
    num_nodes: int,
    timeout_s: float,
    stop: threading.Event,
    events: Events,
    done: Callable[[FleetServer], None],
) -> ServerApp:
    """A ServerApp whose main runs the algorithm on a ``FlowerTransport`` and hands the finished
    server to ``done``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        transport = FlowerTransport(grid, packer, num_nodes, timeout_s, stop, events)
        server = make_server(transport)
        server.run()
        done(server)

    return app
