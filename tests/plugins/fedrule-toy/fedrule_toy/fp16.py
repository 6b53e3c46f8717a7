"""``fp16``: the full item table in float16, as an item codec a device decodes by name.

The payload is a 6-byte header (items, dimension) and the n x d values as float16, so
``memory_bytes`` is exactly ``6 + 2 n d``. A device trains the decoded rows themselves (one
parameter row per item). Each decode appends this process's id to the file that
``$FEDRULE_TOY_DECODE_LOG`` names, so a test sees which processes decoded.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.model.codecs.composed import ComposedTable
from fedrule.model.codecs.decoder import Decoder
from fedrule.model.codecs.dense import DenseTable, SingleConfigCodec, check_single_config

HEADER = struct.Struct("<IH")  # n_items, dim


@dataclass(frozen=True, eq=False)
class FP16Codec(SingleConfigCodec):
    n_items: int
    dim: int

    @property
    def table_shape(self) -> tuple[int, int]:
        return (self.n_items, self.dim)

    def memory_bytes(self, config: np.ndarray) -> int:
        check_single_config(config)
        return HEADER.size + 2 * self.n_items * self.dim

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes:
        check_single_config(config)
        values = np.asarray(table, dtype=np.float16).reshape(self.n_items, self.dim)
        return HEADER.pack(self.n_items, self.dim) + values.tobytes()

    def decode(self, payload: bytes) -> DenseTable:
        return decode(payload)


def decode_trainable(payload: bytes) -> ComposedTable:
    """The rows a device trains: every item's own row, as received."""
    log = os.environ.get("FEDRULE_TOY_DECODE_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    n_items, dim = HEADER.unpack_from(payload, 0)
    values = np.frombuffer(payload, np.float16, offset=HEADER.size)
    table = torch.from_numpy(values.astype(np.float32).reshape(n_items, dim))
    return ComposedTable(table, (np.arange(n_items, dtype=np.int64),), 2)


def decode(payload: bytes) -> DenseTable:
    """A device's scorer: the float16 table widened to float32."""
    return DenseTable(np.ones((1, 1), dtype=bool), decode_trainable(payload).item_table())


DECODER = Decoder(decode, decode_trainable)
