"""The item tables the server trains, stacked row-wise in one array, and the format of each.

``federated.method`` decides them:

- ``rule``, ``nested``, ``full-prefix``: one elastic table (items x d);
- ``per-tier``: one elastic table per tier (each items x d);
- ``hashing``, ``qr``: one compressed table per tier at the tier's smallest budget (the hashed
  rows, or the quotient table over the remainder table), trained by the tier's devices;
- ``popularity``: the catalogue's interaction counts (items x 1), no training.

Table ``t`` is rows ``offsets[t]`` to ``offsets[t + 1]``, so the server step, its state, round
hooks and checkpoints see one array whatever the method. Devices never see the stacking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedrule import seeds
from fedrule.model.codec import ItemCodec
from fedrule.model.codecs.hashing import HashingCodec, hash_params
from fedrule.model.codecs.popularity import PopularityCodec
from fedrule.model.codecs.qr import QRCodec
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import ModelConfig

COMPRESSED = ("hashing", "qr")  # methods whose devices train shared parameter rows
CODEC_OF_METHOD = {"hashing": "hashing", "qr": "qr", "popularity": "popularity"}


def codec_kind(method: str) -> str:
    """The payload format devices of ``method`` receive."""
    return CODEC_OF_METHOD.get(method, "elastic")


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


def compressed_tables(
    method: str, model: ModelConfig, n_items: int, budgets: np.ndarray, seed: int
) -> ServerTables:
    """One hashing or QR table per tier, the largest that fits the tier's smallest budget
    (``budgets``, per tier) at full d (one hash function for all tiers, drawn from the seed).
    A budget too small for any table: ``BudgetError``."""
    codecs: list[ItemCodec] = []
    a, b = hash_params(seeds.server_rng(seed, seeds.HASH_ITEMS))
    for budget in budgets:
        if method == "hashing":
            codec: ItemCodec = HashingCodec.fit_budget(
                n_items, model.dim, int(budget), a, b, model.bytes_per_value
            )
        else:
            codec = QRCodec.fit_budget(n_items, model.dim, int(budget), model.bytes_per_value)
        codecs.append(codec)
    sizes = [c.table_shape[0] for c in codecs]
    return ServerTables(tuple(codecs), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), 1)


def popularity_tables(n_items: int) -> ServerTables:
    return ServerTables((PopularityCodec(n_items),), np.array([0, n_items], np.int64), 1)


def initial_table(tables: ServerTables, method: str, model: ModelConfig, seed: int) -> np.ndarray:
    """The server's initial array of a trained method: elastic tables each from the same
    N(0, init_std) draw; hashed rows N(0, init_std); QR factors N(0, sqrt(init_std)), so that
    their products have the plain model's scale (as the centralised codec trainer)."""
    rng = seeds.server_rng(seed, seeds.TABLE_INIT)
    if method in COMPRESSED:
        scale = math.sqrt(model.init_std) if method == "qr" else model.init_std
        shape = (tables.rows, model.dim)
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    n_items = tables.codecs[0].n_items
    one = (rng.standard_normal((n_items, model.dim)) * model.init_std).astype(np.float32)
    return np.tile(one, (len(tables.codecs), 1))
