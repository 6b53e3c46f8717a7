"""Message loss: a transport wrapper that loses requests (or their replies) at random.

Which message is lost is drawn from (seed, kind, round or stamp, the message's first device), so
a lossy run is reproducible, and survives a resume. A lost message's devices count as failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedrule import seeds
from fedrule.algorithm.transport import Transport
from fedrule.protocol import FAULT_KINDS, KIND_NUMBERS, Message, NodeFailure, stamp_of


class LossyTransport:
    def __init__(self, inner: Transport, loss: float, seed: int, phases: Sequence[str]) -> None:
        self.inner, self.loss, self.seed = inner, loss, seed
        self.kinds = {FAULT_KINDS[phase] for phase in phases}

    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        return self.inner.pack(devices)

    def exchange(self, requests: Sequence[Message], what: str) -> list[Message | NodeFailure]:
        lost = [self._lost(r) for r in requests]
        sent = [r for r, gone in zip(requests, lost, strict=True) if not gone]
        replies = iter(self.inner.exchange(sent, what) if sent else [])
        return [NodeFailure("message lost", lost=True) if gone else next(replies) for gone in lost]

    def _lost(self, request: Message) -> bool:
        if request.kind not in self.kinds:
            return False
        stamp = stamp_of(request)
        devices = getattr(request, "devices", np.zeros(0))
        first = int(devices[0]) if len(devices) else 0
        salts = [self.seed, seeds.MESSAGE_LOSS, KIND_NUMBERS[request.kind], stamp, first]
        return bool(np.random.default_rng(np.random.SeedSequence(salts)).random() < self.loss)
