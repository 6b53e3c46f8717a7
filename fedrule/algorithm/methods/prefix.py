"""The prefix baselines: uniform prefixes of blocks of the elastic table, no search.

- ``nested`` (HeteroFL-style nested slicing): one table; every device holds and trains the
  largest uniform prefix of blocks (the first d_t columns of every item) that fits its budget,
  so each block averages over the devices that hold it;
- ``per-tier``: one table per tier, trained from scratch by that tier's devices only, at the
  largest uniform prefix that fits the tier's smallest budget;
- ``full-prefix``: one table; every device trains the full table, and receives at the end the
  largest uniform prefix that fits its budget (the naive deployment).
"""

from __future__ import annotations

import numpy as np

from fedrule.algorithm.assignment import Assignment, uniform_prefixes
from fedrule.algorithm.context import FleetRegistry, ServerContext
from fedrule.algorithm.methods.base import FederatedMethod
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables, elastic_tables
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import ModelConfig


class Nested(FederatedMethod):
    name = "nested"

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        fleet = ctx.fleet
        return uniform_prefixes(ctx.codec, fleet.budget_bytes, fleet.tier, per_tier=False)


class PerTier(FederatedMethod):
    name = "per-tier"
    tables_per_tier = True

    def tables(
        self, codec: ElasticLayout, fleet: FleetRegistry, model: ModelConfig, seed: int
    ) -> ServerTables:
        return elastic_tables(codec, len(fleet.tier_names))

    def item_array(self, table: np.ndarray, tables: ServerTables) -> np.ndarray:
        """Tiers x items x d."""
        return table.reshape(len(tables.codecs), tables.codecs[0].n_items, -1)

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        fleet = ctx.fleet
        return uniform_prefixes(ctx.codec, fleet.budget_bytes, fleet.tier, per_tier=True)


class FullPrefix(FederatedMethod):
    name = "full-prefix"

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        return Assignment.everyone(ctx.codec.full_config(), ctx.fleet.num_devices)

    def dispatch_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        """The largest uniform prefix that fits each device's budget (as nested trains)."""
        fleet = ctx.fleet
        return uniform_prefixes(ctx.codec, fleet.budget_bytes, fleet.tier, per_tier=False)


NESTED, PER_TIER, FULL_PREFIX = Nested(), PerTier(), FullPrefix()
