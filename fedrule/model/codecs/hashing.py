"""The hashing trick as an ``ItemCodec``: R rows of d values shared by all items.

Item ``i`` uses row ``h(i) = ((a * i + b) mod p) mod R`` with ``p = 2**31 - 1`` (a universal
hash; ``a`` in [1, p), ``b`` in [0, p), drawn from a seed by the caller). The payload is a 20-byte
header (items, rows, dim, value size, a, b) and the R x d values; ``memory_bytes`` is exactly its
length. ``fit_budget`` picks the most rows (at most one per item) that fit a budget at full d.

For training (``fedrule.model.codecs.train``) the codec maps its parameter table (R x d) to item
embeddings (``embed``) and item gradients back to the table (``embed_grad``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from fedrule.errors import BudgetError
from fedrule.model.codecs.composed import ComposedTable
from fedrule.model.codecs.decoder import Decoder, register_codec
from fedrule.model.codecs.dense import (
    SINGLE_CONFIG,
    DenseTable,
    SingleConfigCodec,
    check_single_config,
)

PRIME = 2**31 - 1
HEADER = struct.Struct("<IIHBxII")  # n_items, rows, dim, bytes per value, a, b
_DTYPES = {4: np.float32, 2: np.float16}


def hash_rows(items: np.ndarray, a: int, b: int, rows: int) -> np.ndarray:
    """``((a * i + b) mod p) mod rows`` per item (int64; exact for ids below 2**31)."""
    return (np.asarray(items, dtype=np.int64) * a + b) % PRIME % rows


def hash_params(rng: np.random.Generator) -> tuple[int, int]:
    """A random member ``(a, b)`` of the universal family."""
    return int(rng.integers(1, PRIME)), int(rng.integers(0, PRIME))


@dataclass(frozen=True, eq=False)
class HashingCodec(SingleConfigCodec):
    """``n_items`` items hashed onto ``rows`` rows of ``dim`` values."""

    n_items: int
    rows: int
    dim: int
    a: int
    b: int
    bytes_per_value: int = 4

    def __post_init__(self) -> None:
        if self.rows < 1 or not 0 < self.n_items < PRIME:
            raise ValueError("need 1 <= rows and 0 < n_items < 2**31 - 1")
        if not (1 <= self.a < PRIME and 0 <= self.b < PRIME):
            raise ValueError("need 1 <= a < p and 0 <= b < p")
        if self.bytes_per_value not in _DTYPES:
            raise ValueError("bytes_per_value must be 4 or 2")

    @classmethod
    def fit_budget(
        cls, n_items: int, dim: int, budget_bytes: int, a: int, b: int, bytes_per_value: int = 4
    ) -> HashingCodec:
        """The most rows (at most ``n_items``) whose payload fits ``budget_bytes``."""
        rows = min(n_items, (budget_bytes - HEADER.size) // (dim * bytes_per_value))
        if rows < 1:
            raise BudgetError(
                f"budget of {budget_bytes} bytes holds no hashed row of {dim} values "
                f"({cls.min_budget_bytes(dim, bytes_per_value)} bytes at least)"
            )
        return cls(n_items, rows, dim, a, b, bytes_per_value)

    @staticmethod
    def min_budget_bytes(dim: int, bytes_per_value: int = 4) -> int:
        """The smallest budget ``fit_budget`` fits: the header and one row."""
        return HEADER.size + dim * bytes_per_value

    # ---------------------------------------------------------------- ItemCodec
    def memory_bytes(self, config: np.ndarray) -> int:
        check_single_config(config)
        return HEADER.size + self.rows * self.dim * self.bytes_per_value

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes:
        """The payload of the hashed table (rows x dim)."""
        check_single_config(config)
        values = np.asarray(table, dtype=np.float32)
        if values.shape != self.table_shape:
            raise ValueError(f"expected a {self.table_shape} table, got {values.shape}")
        header = HEADER.pack(
            self.n_items, self.rows, self.dim, self.bytes_per_value, self.a, self.b
        )
        return header + values.astype(_DTYPES[self.bytes_per_value]).tobytes()

    def decode(self, payload: bytes) -> DenseTable:
        return decode(payload)

    # ---------------------------------------------------------------- training
    @property
    def table_shape(self) -> tuple[int, int]:
        return (self.rows, self.dim)

    @cached_property
    def item_rows(self) -> torch.Tensor:
        """Row of every item (n)."""
        return torch.from_numpy(hash_rows(np.arange(self.n_items), self.a, self.b, self.rows))

    def init_table(self, init_std: float, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(self.table_shape, generator=generator) * init_std

    def embed(self, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``items``: their rows."""
        return table[self.item_rows[items]]

    def embed_grad(
        self, table: torch.Tensor, items: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        """The table's gradient from the gradients of ``items``' embeddings (summed per row)."""
        return torch.zeros_like(table).index_add_(0, self.item_rows[items], grad)

    def item_table(self, table: torch.Tensor) -> torch.Tensor:
        """Every item's embedding (n x d)."""
        return table[self.item_rows]


def decode_params(payload: bytes) -> ComposedTable:
    """The hashed table of a payload made by ``HashingCodec.encode``, and every item's row:
    what a device trains."""
    n_items, rows, dim, bpv, a, b = HEADER.unpack_from(payload, 0)
    values = np.frombuffer(payload, _DTYPES[bpv], offset=HEADER.size)
    if values.size != rows * dim:
        raise ValueError("payload size does not match its header")
    table = torch.from_numpy(values.astype(np.float32).reshape(rows, dim))
    return ComposedTable(table, (hash_rows(np.arange(n_items), a, b, rows),), bpv)


def decode(payload: bytes) -> DenseTable:
    """Rebuild every item's embedding from a payload made by ``HashingCodec.encode``."""
    return DenseTable(SINGLE_CONFIG.copy(), decode_params(payload).item_table())


register_codec("hashing", Decoder(decode, decode_params))
