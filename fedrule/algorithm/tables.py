"""The item tables the server trains, stacked row-wise in one array, and the format of each.

The method decides them (``FederatedMethod.tables``, ``fedrule.algorithm.methods``): one
elastic table (rule, nested, full-prefix), one elastic table per tier (per-tier), one compressed
table per tier at the tier's smallest budget (hashing, qr), or the catalogue's interaction
counts (popularity, items x 1, no training).

Table ``t`` is rows ``offsets[t]`` to ``offsets[t + 1]``, so the server step, its state, round
hooks and checkpoints see one array whatever the method. Devices never see the stacking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedrule.model.codec import ItemCodec
from fedrule.model.codecs.popularity import PopularityCodec
from fedrule.model.elastic import ElasticLayout


@dataclass(frozen=True, eq=False)
class ServerTables:
    """Per table its format, and where its rows lie in the server's array."""

    codecs: tuple[ItemCodec, ...]
    offsets: np.ndarray  # tables + 1 row bounds
    num_blocks: int  # blocks per row the aggregation weighs separately

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    def of(self, table: np.ndarray, index: int) -> np.ndarray:
        """Table ``index`` of the server's array (a view)."""
        return table[self.offsets[index] : self.offsets[index + 1]]

    def payload(self, table: np.ndarray, index: int, config: np.ndarray) -> bytes:
        return self.codecs[index].encode(self.of(table, index), config)


def elastic_tables(codec: ElasticLayout, count: int) -> ServerTables:
    """``count`` elastic tables of the same layout."""
    offsets = np.arange(count + 1, dtype=np.int64) * codec.n_items
    return ServerTables((codec,) * count, offsets, codec.num_blocks)


def tier_budgets(budget_bytes: np.ndarray, tier: np.ndarray, num_tiers: int) -> np.ndarray:
    """Each tier's smallest budget (a tier without devices: the fleet's largest)."""
    return np.array(
        [
            budget_bytes[tier == t].min() if (tier == t).any() else budget_bytes.max()
            for t in range(num_tiers)
        ],
        dtype=np.int64,
    )


def stacked_tables(codecs: Sequence[ItemCodec], num_blocks: int = 1) -> ServerTables:
    """Tables of the given formats, each as many rows as its parameter table
    (``table_shape``: a compressed table's rows, not its items)."""
    sizes = [c.table_shape[0] for c in codecs]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return ServerTables(tuple(codecs), offsets, num_blocks)


def popularity_tables(n_items: int) -> ServerTables:
    return ServerTables((PopularityCodec(n_items),), np.array([0, n_items], np.int64), 1)
