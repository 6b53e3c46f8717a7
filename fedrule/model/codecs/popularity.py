"""Training popularity as an ``ItemCodec``: no model, the floor every method must beat.

A device stores the item ranking by training popularity (ties by item id), most popular first:
an 8-byte header (items, bytes per id) and one id per item (1, 2 or 4 bytes); ``memory_bytes``
is exactly its length. An item's score is ``n - its rank``, the same for every user.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.model.codecs.decoder import Decoder, register_codec
from fedrule.model.codecs.dense import SINGLE_CONFIG, SingleConfigCodec, check_single_config

HEADER = struct.Struct("<IB3x")  # n_items, bytes per item id
_ID_TYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def id_width(n_items: int) -> int:
    """Bytes per item id: 1, 2 or 4."""
    return 1 if n_items <= 1 << 8 else 2 if n_items <= 1 << 16 else 4


def popularity_ranking(counts: np.ndarray) -> np.ndarray:
    """Item ids, most popular first, ties by item id."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    return np.lexsort((np.arange(counts.size), -counts))


@dataclass(frozen=True, eq=False)
class RankedItems:
    """A decoded ranking (``ReceivedTable``): ``table`` holds each item's score (n x 1)."""

    config: np.ndarray
    table: torch.Tensor

    def score(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """The same scores for every user (u x n)."""
        return self.table[:, 0].repeat(user_vectors.shape[0], 1)


@dataclass(frozen=True, eq=False)
class PopularityCodec(SingleConfigCodec):
    """The popularity ranking of ``n_items`` items."""

    n_items: int

    def memory_bytes(self, config: np.ndarray) -> int:
        check_single_config(config)
        return HEADER.size + self.n_items * id_width(self.n_items)

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes:
        """The ranking of ``table``: training interaction counts per item (n)."""
        check_single_config(config)
        counts = np.asarray(table).reshape(-1)
        if counts.size != self.n_items:
            raise ValueError(f"expected {self.n_items} counts, got {counts.size}")
        width = id_width(self.n_items)
        ranking = popularity_ranking(counts).astype(_ID_TYPES[width])
        return HEADER.pack(self.n_items, width) + ranking.tobytes()

    def decode(self, payload: bytes) -> RankedItems:
        return decode(payload)


def decode(payload: bytes) -> RankedItems:
    """Rebuild the scores from a payload made by ``PopularityCodec.encode``."""
    n_items, width = HEADER.unpack_from(payload, 0)
    ranking = np.frombuffer(payload, _ID_TYPES[width], offset=HEADER.size).astype(np.int64)
    if ranking.size != n_items:
        raise ValueError("payload size does not match its header")
    scores = np.empty(n_items, dtype=np.float32)
    scores[ranking] = np.arange(n_items, 0, -1, dtype=np.float32)
    return RankedItems(SINGLE_CONFIG.copy(), torch.from_numpy(scores)[:, None])


register_codec("popularity", Decoder(decode))
