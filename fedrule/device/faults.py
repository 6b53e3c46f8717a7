"""Injected faults on the device side: crashes, stragglers and dying worker processes.

Every decision comes from a random stream of its own — a device's from (seed, device, message
kind, round), a message's from (seed, kind, round, its first device) — so a faulty run is as
reproducible as a clean one, whatever the packing or the number of workers (except the worker
crash, which is per message by nature). Stragglers run on simulated time: a straggler's delay is
drawn, never slept, and the phase's deadline decides whether the server still counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.protocol import KIND_NUMBERS, Kind, Message, stamp_of
from fedrule.seeds import STREAM_FAULTS

OK, CRASHED, LATE = 0, 1, 2


@dataclass(frozen=True)
class DeviceFaults:
    crash: float = 0.0
    straggler: float = 0.0
    straggler_delay: float = 30.0
    deadline: float = 0.0
    worker_crash: float = 0.0
    kinds: frozenset[Kind] = frozenset()  # the message kinds faults hit (faults.phases)

    def applies(self, kind: Kind) -> bool:
        return kind in self.kinds and (self.crash > 0 or self.straggler > 0)

    def fates(self, seed: int, devices: np.ndarray, kind: Kind, stamp: int) -> np.ndarray:
        """OK, CRASHED or LATE per device for one request of ``kind`` (round ``stamp``)."""
        fate = np.full(len(devices), OK, dtype=np.int8)
        if not self.applies(kind):
            return fate
        for k, device in enumerate(np.asarray(devices, dtype=np.int64).tolist()):
            stream = [seed, device, STREAM_FAULTS, KIND_NUMBERS[kind], stamp]
            rng = np.random.default_rng(np.random.SeedSequence(stream))
            crashes, straggles, delay = rng.random(), rng.random(), rng.exponential()
            late = 0 < self.deadline < delay * self.straggler_delay
            if crashes < self.crash:
                fate[k] = CRASHED
            elif straggles < self.straggler and late:
                fate[k] = LATE
        return fate

    def worker_dies(self, seed: int, request: Message) -> bool:
        """Does the worker process handling this request die?"""
        devices = request.devices
        if self.worker_crash <= 0 or request.kind not in self.kinds or len(devices) == 0:
            return False
        stream = [seed, int(devices[0]), STREAM_FAULTS, KIND_NUMBERS[request.kind]]
        stream += [stamp_of(request), 1]
        return bool(
            np.random.default_rng(np.random.SeedSequence(stream)).random() < self.worker_crash
        )
