"""The device side of an item table format, registered by name (``fedrule.registry.CODECS``).

A device knows its run's format by name (``HostSettings.codec``, the method's ``codec_kind``)
and rebuilds what it receives with that format's ``Decoder``: ``decode`` gives a scorer
(``ReceivedTable``); a format whose items share parameter rows (hashing, QR) also gives the rows
a device trains (``decode_trainable``, a ``ComposedTable``). The lookup happens in the process
that decodes, so a Ray worker or a Flower SuperNode finds a plug-in format through its entry
point (``[project.entry-points."fedrule.codecs"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np
import torch

from fedrule.model.codecs.composed import ComposedTable
from fedrule.registry import CODECS


@runtime_checkable
class ReceivedTable(Protocol):
    """A decoded payload on a device."""

    config: np.ndarray
    table: torch.Tensor

    def score(self, user_vectors: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Decoder:
    """How a device rebuilds a payload of one format: a scorer (``decode``) and, for a format
    of shared parameter rows, the rows it trains (``decode_trainable``; None: the device trains
    the decoded item table itself, as an elastic one, or nothing, as the ranking)."""

    decode: Callable[[bytes], ReceivedTable]
    decode_trainable: Callable[[bytes], ComposedTable] | None = None


def register_codec(name: str, decoder: Decoder) -> Decoder:
    """Register ``decoder`` as the format ``name`` (fedrule's own; a package: an entry point)."""
    return cast(Decoder, CODECS.register(name, decoder))


def decoder_of(kind: str) -> Decoder:
    """The registered format ``kind`` (unknown: a one-line ``ConfigError``)."""
    return cast(Decoder, CODECS.get(kind))
