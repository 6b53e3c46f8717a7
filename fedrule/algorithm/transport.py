"""The seam between the federated algorithm and whatever carries its messages.

The algorithm addresses devices. A transport packs them into cohorts (``pack``: simulation
infrastructure, balanced by the simulated work; the modelled server does not use it), carries
one request per cohort and returns one reply per request, in request order — a ``NodeFailure``
where a node raised or never answered. Two implementations: ``fedrule.transports.flower`` (the
product path: Flower's Message API on its Ray backend) and ``fedrule.transports.inprocess``
(the same device code called directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fedrule.protocol import Message, NodeFailure


class Stopped(Exception):
    """The run was asked to stop (an error elsewhere, or Ctrl-C)."""


class Transport(Protocol):
    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        """Cohorts (ascending device numbers) covering ``devices``, one per request."""
        ...

    def exchange(self, requests: Sequence[Message], what: str) -> list[Message | NodeFailure]:
        """Send every request and return their replies in the same order."""
        ...
