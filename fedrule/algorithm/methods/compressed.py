"""The compressed baselines: one hashed (``hashing``) or quotient-remainder (``qr``) table per
tier, the largest of its format that fits the tier's smallest budget at full d, trained by the
tier's devices (their parameter rows, ``fedrule.device.composed_train``) and dispatched to them
whole.

``codec_at`` is the one place that fits a format to a budget: the federated tables here and the
centralised baselines at equal bytes (``fedrule.engine.baselines``) both use it.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from fedrule import seeds
from fedrule.algorithm.assignment import Assignment, per_tier_tables
from fedrule.algorithm.context import FleetRegistry, ServerContext
from fedrule.algorithm.methods.base import FederatedMethod
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables, stacked_tables, tier_budgets
from fedrule.model.codecs.hashing import HashingCodec, hash_params
from fedrule.model.codecs.qr import QRCodec
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import ModelConfig


class Compressed(FederatedMethod):
    tables_per_tier = True

    @abstractmethod
    def codec_at(
        self, n_items: int, model: ModelConfig, budget_bytes: int, rng: np.random.Generator
    ) -> HashingCodec | QRCodec:
        """The largest table of this format within ``budget_bytes`` at full d (``rng``: the
        format's random choices). A budget too small for any: ``BudgetError``."""

    @abstractmethod
    def init_std(self, model: ModelConfig) -> float:
        """The spread of the initial parameter rows."""

    @abstractmethod
    def sizes(self, codec: HashingCodec | QRCodec) -> dict[str, int]:
        """The table's sizes, as the baselines' rows report them."""

    def tables(
        self, codec: ElasticLayout, fleet: FleetRegistry, model: ModelConfig, seed: int
    ) -> ServerTables:
        """One table per tier at the tier's smallest budget (one hash function for all tiers,
        drawn from the seed)."""
        budgets = tier_budgets(fleet.budget_bytes, fleet.tier, len(fleet.tier_names))
        n_items = fleet.n_items
        return stacked_tables(
            [  # the same stream for every tier: one hash function
                self.codec_at(n_items, model, int(b), seeds.server_rng(seed, seeds.HASH_ITEMS))
                for b in budgets
            ]
        )

    def initial_table(
        self, tables: ServerTables, model: ModelConfig, seed: int, popularity: np.ndarray
    ) -> np.ndarray:
        rng = seeds.server_rng(seed, seeds.TABLE_INIT)
        values = rng.standard_normal((tables.rows, model.dim)) * self.init_std(model)
        return values.astype(np.float32)

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        return per_tier_tables(ctx.fleet.tier)


class Hashing(Compressed):
    name = "hashing"
    codec_kind = "hashing"

    def codec_at(
        self, n_items: int, model: ModelConfig, budget_bytes: int, rng: np.random.Generator
    ) -> HashingCodec:
        a, b = hash_params(rng)
        return HashingCodec.fit_budget(
            n_items, model.dim, budget_bytes, a, b, model.bytes_per_value
        )

    def init_std(self, model: ModelConfig) -> float:
        return model.init_std  # hashed rows N(0, init_std)

    def sizes(self, codec: HashingCodec) -> dict[str, int]:
        return {"rows": codec.rows}

    def min_budget(self, model: ModelConfig, n_items: int) -> tuple[int, str]:
        minimum = HashingCodec.min_budget_bytes(model.dim, model.bytes_per_value)
        return minimum, f"hashed row of {model.dim} values"


class QR(Compressed):
    name = "qr"
    codec_kind = "qr"

    def codec_at(
        self, n_items: int, model: ModelConfig, budget_bytes: int, rng: np.random.Generator
    ) -> QRCodec:
        return QRCodec.fit_budget(n_items, model.dim, budget_bytes, model.bytes_per_value)

    def init_std(self, model: ModelConfig) -> float:
        # factors N(0, sqrt(init_std)): their products have the plain model's scale, as the
        # centralised codec trainer
        return math.sqrt(model.init_std)

    def sizes(self, codec: QRCodec) -> dict[str, int]:
        return {"rows": codec.table_shape[0], "m": codec.m}

    def min_budget(self, model: ModelConfig, n_items: int) -> tuple[int, str]:
        minimum = QRCodec.min_budget_bytes(n_items, model.dim, model.bytes_per_value)
        return minimum, "quotient-remainder pair of tables"


HASHING, QUOTIENT_REMAINDER = Hashing(), QR()
