"""Injected faults on the device side: crashes, stragglers and dying worker processes.

Every decision comes from a random stream of its own — a device's from (seed, device, phase,
round), a message's from (seed, phase, round, its first device) — so a faulty run is as
reproducible as a clean one, whatever the packing or the number of workers (except the worker
crash, which is per message by nature). Stragglers run on simulated time: a straggler's delay is
drawn, never slept, and the phase's deadline decides whether the server still counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.protocol import LabelRequest, Message, TestRequest, TrainRequest
from fedrule.seeds import STREAM_FAULTS

OK, CRASHED, LATE = 0, 1, 2
PHASE_IDS = {"count": 0, "train": 1, "label": 2, "test": 3}


@dataclass(frozen=True)
class DeviceFaults:
    crash: float = 0.0
    straggler: float = 0.0
    straggler_delay: float = 30.0
    deadline: float = 0.0
    worker_crash: float = 0.0
    phases: tuple[str, ...] = ()

    def applies(self, phase: str) -> bool:
        return phase in self.phases and (self.crash > 0 or self.straggler > 0)

    def fates(self, seed: int, devices: np.ndarray, phase: str, stamp: int) -> np.ndarray:
        """OK, CRASHED or LATE per device for one phase (round ``stamp``)."""
        fate = np.full(len(devices), OK, dtype=np.int8)
        if not self.applies(phase):
            return fate
        for k, device in enumerate(np.asarray(devices, dtype=np.int64).tolist()):
            stream = [seed, device, STREAM_FAULTS, PHASE_IDS[phase], stamp]
            rng = np.random.default_rng(np.random.SeedSequence(stream))
            crashes, straggles, delay = rng.random(), rng.random(), rng.exponential()
            late = 0 < self.deadline < delay * self.straggler_delay
            if crashes < self.crash:
                fate[k] = CRASHED
            elif straggles < self.straggler and late:
                fate[k] = LATE
        return fate

    def worker_dies(self, seed: int, devices: np.ndarray, phase: str, stamp: int) -> bool:
        """Does the worker process handling this message die?"""
        if self.worker_crash <= 0 or phase not in self.phases or len(devices) == 0:
            return False
        stream = [seed, int(devices[0]), STREAM_FAULTS, PHASE_IDS[phase], stamp, 1]
        return bool(
            np.random.default_rng(np.random.SeedSequence(stream)).random() < self.worker_crash
        )


def phase_of(request: Message) -> tuple[str, int]:
    """The fault phase of a request and its round (or labelling stamp)."""
    if isinstance(request, TrainRequest):
        return "train", request.round
    if isinstance(request, LabelRequest):
        return "label", request.stamp
    if isinstance(request, TestRequest):
        return "test", 0
    return "count", 0
