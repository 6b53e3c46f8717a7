"""Quotient-remainder embeddings (Shi et al., KDD 2020) as an ``ItemCodec``.

Two tables of d columns: ``T_q`` with ``ceil(n / m)`` rows and ``T_r`` with ``m`` rows; item ``i``
embeds as the elementwise product ``T_q[i // m] * T_r[i % m]`` (the paper's multiplicative
composition). Every item gets a distinct pair of rows. The payload is a 12-byte header (items,
m, dim, value size) and both tables, ``T_q`` first; ``memory_bytes`` is exactly its length.
``fit_budget`` picks the smallest ``m`` whose two tables fit a budget at full d: the most rows
(``ceil(n / m) + m`` falls as m grows towards sqrt(n)), so the fewest items share a quotient row.

For training, the parameter table stacks ``T_q`` over ``T_r`` ((ceil(n/m) + m) x d).
"""

from __future__ import annotations

import math
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

HEADER = struct.Struct("<IIHBx")  # n_items, m (remainder rows), dim, bytes per value
_DTYPES = {4: np.float32, 2: np.float16}


def qr_rows(n_items: int, m: int) -> int:
    """Rows of both tables together: ``ceil(n / m) + m``."""
    return -(-n_items // m) + m


@dataclass(frozen=True, eq=False)
class QRCodec(SingleConfigCodec):
    """``n_items`` items composed from a quotient and a remainder table (``m`` rows)."""

    n_items: int
    m: int
    dim: int
    bytes_per_value: int = 4

    def __post_init__(self) -> None:
        if not (self.n_items >= 1 and 1 <= self.m <= self.n_items):
            raise ValueError("need n_items >= 1 and 1 <= m <= n_items")
        if self.bytes_per_value not in _DTYPES:
            raise ValueError("bytes_per_value must be 4 or 2")

    @classmethod
    def fit_budget(
        cls, n_items: int, dim: int, budget_bytes: int, bytes_per_value: int = 4
    ) -> QRCodec:
        """The smallest ``m`` whose tables (``ceil(n/m) + m`` rows of ``dim``) fit the budget."""
        rows = (budget_bytes - HEADER.size) // (dim * bytes_per_value)
        ms = np.arange(1, n_items + 1)
        fits = np.flatnonzero(qr_rows(n_items, ms) <= rows)
        if fits.size == 0:
            raise BudgetError(
                f"budget of {budget_bytes} bytes holds no quotient-remainder pair of tables "
                f"({cls.min_budget_bytes(n_items, dim, bytes_per_value)} bytes at least)"
            )
        return cls(n_items, int(ms[fits[0]]), dim, bytes_per_value)

    @staticmethod
    def min_budget_bytes(n_items: int, dim: int, bytes_per_value: int = 4) -> int:
        """The smallest budget ``fit_budget`` fits: the header and the fewest rows of both
        tables (``m`` near sqrt(n))."""
        least = int(qr_rows(n_items, np.arange(1, n_items + 1)).min())
        return HEADER.size + least * dim * bytes_per_value

    @property
    def quotient_rows(self) -> int:
        return -(-self.n_items // self.m)

    # ---------------------------------------------------------------- ItemCodec
    def memory_bytes(self, config: np.ndarray) -> int:
        check_single_config(config)
        return HEADER.size + qr_rows(self.n_items, self.m) * self.dim * self.bytes_per_value

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes:
        """The payload of the stacked tables (``T_q`` over ``T_r``)."""
        check_single_config(config)
        values = np.asarray(table, dtype=np.float32)
        if values.shape != self.table_shape:
            raise ValueError(f"expected a {self.table_shape} table, got {values.shape}")
        header = HEADER.pack(self.n_items, self.m, self.dim, self.bytes_per_value)
        return header + values.astype(_DTYPES[self.bytes_per_value]).tobytes()

    def decode(self, payload: bytes) -> DenseTable:
        return decode(payload)

    # ---------------------------------------------------------------- training
    @property
    def table_shape(self) -> tuple[int, int]:
        return (qr_rows(self.n_items, self.m), self.dim)

    @cached_property
    def _parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per item: its quotient row and its remainder row in the stacked table."""
        items = torch.arange(self.n_items)
        return items // self.m, self.quotient_rows + items % self.m

    def init_table(self, init_std: float, generator: torch.Generator) -> torch.Tensor:
        """Both tables N(0, sqrt(init_std)): products have the plain model's scale init_std."""
        return torch.randn(self.table_shape, generator=generator) * math.sqrt(init_std)

    def embed(self, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``items``: ``T_q[i // m] * T_r[i % m]``."""
        q, r = self._parts
        return table[q[items]] * table[r[items]]

    def embed_grad(
        self, table: torch.Tensor, items: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        """The stacked table's gradient from the gradients of ``items``' embeddings."""
        q, r = self._parts
        qi, ri = q[items], r[items]
        out = torch.zeros_like(table).index_add_(0, qi, grad * table[ri])
        return out.index_add_(0, ri, grad * table[qi])

    def item_table(self, table: torch.Tensor) -> torch.Tensor:
        """Every item's embedding (n x d)."""
        q, r = self._parts
        return table[q] * table[r]


def decode_params(payload: bytes) -> ComposedTable:
    """The stacked tables (``T_q`` over ``T_r``) of a payload made by ``QRCodec.encode``, and
    every item's quotient and remainder row: what a device trains."""
    n_items, m, dim, bpv = HEADER.unpack_from(payload, 0)
    values = np.frombuffer(payload, _DTYPES[bpv], offset=HEADER.size)
    quotient = -(-n_items // m)
    if values.size != (quotient + m) * dim:
        raise ValueError("payload size does not match its header")
    table = torch.from_numpy(values.astype(np.float32).reshape(quotient + m, dim))
    items = np.arange(n_items, dtype=np.int64)
    return ComposedTable(table, (items // m, quotient + items % m), bpv)


def decode(payload: bytes) -> DenseTable:
    """Rebuild every item's embedding from a payload made by ``QRCodec.encode``."""
    return DenseTable(SINGLE_CONFIG.copy(), decode_params(payload).item_table())


register_codec("qr", Decoder(decode, decode_params))
