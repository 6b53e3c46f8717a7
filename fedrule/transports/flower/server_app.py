"""The Flower ServerApp: runs the federated algorithm over Flower's Message API.

``FlowerTransport`` is the algorithm's ``Transport`` on a Flower ``Grid``. Nodes are
interchangeable (any node simulates any device), so an exchange keeps only a few messages in
flight, as many as there are nodes: each cohort goes to the next free node, in the packing's
order (costly cohorts first), until all replies arrived, the exchange timed out (stragglers and
unsent cohorts count as failed) or the run is stopped. Flower's in-memory engine scans its
whole message store for every node several times a second, and holds every message sent, so
sending a phase's hundreds of cohorts at once to as many nodes cost most of a core and
gigabytes of memory on a 100,000-device fleet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

from fedrule.algorithm.packing import Packer
from fedrule.algorithm.server import FleetServer, ServerResults
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
        replies: list[ProtocolMessage | NodeFailure] = [
            NodeFailure(f"no reply within {self.timeout_s:g} s")
        ] * len(requests)
        free = list(reversed(self.nodes))
        in_flight: dict[str, tuple[int, int]] = {}  # message id: (request, node)
        sent = answered = 0
        deadline = time.time() + self.timeout_s
        while sent < len(requests) or in_flight:
            if self.stop.is_set():
                raise Stopped
            if free and sent < len(requests):
                batch = [(i, free.pop()) for i in range(sent, min(len(requests), sent + len(free)))]
                sent += len(batch)
                messages = [
                    Message(to_records(requests[i].to_wire()), node, requests[i].kind.value)
                    for i, node in batch
                ]
                ids = self.grid.push_messages(messages)
                in_flight.update(zip(ids, batch, strict=True))
            for reply in self.grid.pull_messages(set(in_flight)):
                i, node = in_flight.pop(reply.metadata.reply_to_message_id)
                free.append(node)
                replies[i] = _decode(reply, requests[i].kind)
                answered += 1
            missing = len(requests) - answered
            if missing and time.time() > deadline:
                if answered == 0:
                    raise FedruleError(
                        f"{what}: none of {len(requests)} cohorts was answered within "
                        f"{self.timeout_s:g} s",
                        path="engine.round_timeout",
                    )
                self.events.message(  # stragglers are dropped, as a real server would
                    f"{what}: {missing} of {len(requests)} cohorts were not answered within "
                    f"{self.timeout_s:g} s and count as failed"
                )
                break
            if in_flight:
                time.sleep(0.005)
        return replies


IN_FLIGHT_PER_WORKER = 4  # messages in flight per Ray worker: enough to keep every worker busy


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
    done: Callable[[ServerResults], None],
) -> ServerApp:
    """A ServerApp whose main runs the algorithm on a ``FlowerTransport`` and hands the
    server's results to ``done``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        transport = FlowerTransport(grid, packer, num_nodes, timeout_s, stop, events)
        done(make_server(transport).run())

    return app
