"""The in-process transport: the same device code, called directly (tests and debugging).

Every request still travels as its wire form (``to_wire``/``from_wire``), so the protocol's
conversion is exercised exactly as over Flower; a device-side error becomes a ``NodeFailure``
as a raising Flower ClientApp becomes an error reply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedrule.algorithm.packing import Packer
from fedrule.algorithm.transport import Stopped
from fedrule.device.host import DeviceHost
from fedrule.protocol import REPLIES, REQUESTS, Message, NodeFailure


class InProcessTransport:
    def __init__(self, host: DeviceHost, packer: Packer, stop: object | None = None) -> None:
        self.host, self.packer, self.stop = host, packer, stop

    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        return self.packer(devices)

    def exchange(self, requests: Sequence[Message], what: str) -> list[Message | NodeFailure]:
        replies: list[Message | NodeFailure] = []
        for request in requests:
            if self.stop is not None and self.stop.is_set():
                raise Stopped
            received = REQUESTS[request.kind].from_wire(request.to_wire())
            settings = self.host.settings
            if settings.faults.worker_dies(settings.seed, received):
                replies.append(NodeFailure("worker process died (injected fault)"))
                continue
            try:
                reply = self.host.handle(received)
            except Exception as exc:
                replies.append(NodeFailure(f"{type(exc).__name__}: {exc}".replace("\n", " ")))
                continue
            replies.append(REPLIES[reply.kind].from_wire(reply.to_wire()))
        return replies
