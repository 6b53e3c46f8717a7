"""``popularity``: no model; every device receives the counted popularity ranking.

The server's one table is the counted interaction totals (items x 1); no round runs, no user
vector matters (the ranking scores every user alike), nothing is searched.
"""

from __future__ import annotations

import numpy as np

from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import FleetRegistry, ServerContext
from fedrule.algorithm.methods.base import FederatedMethod
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables, popularity_tables
from fedrule.model.codecs.dense import SINGLE_CONFIG
from fedrule.model.codecs.popularity import PopularityCodec
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import ModelConfig


class Popularity(FederatedMethod):
    name = "popularity"
    codec_kind = "popularity"
    trains = False
    personalizes = False

    def tables(
        self, codec: ElasticLayout, fleet: FleetRegistry, model: ModelConfig, seed: int
    ) -> ServerTables:
        return popularity_tables(fleet.n_items)

    def initial_table(
        self, tables: ServerTables, model: ModelConfig, seed: int, popularity: np.ndarray
    ) -> np.ndarray:
        """The counts the ranking is made of."""
        return np.asarray(popularity, np.float32)[:, None]

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        """Every device the whole ranking (nothing trains it)."""
        return Assignment.everyone(SINGLE_CONFIG.copy(), ctx.fleet.num_devices)

    def min_budget(self, model: ModelConfig, n_items: int) -> tuple[int, str]:
        minimum = PopularityCodec(n_items).min_bytes()
        return minimum, "popularity ranking (an item id per item + header)"


POPULARITY = Popularity()
