"""``toy-fp16``: every device trains and receives the whole item table in float16 (``fp16``)."""

from __future__ import annotations

from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import FleetRegistry, ServerContext
from fedrule.algorithm.methods import FederatedMethod
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables, stacked_tables
from fedrule.model.codecs.dense import SINGLE_CONFIG
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import ModelConfig
from fedrule_toy.fp16 import FP16Codec


class FullFP16(FederatedMethod):
    name = "toy-fp16"
    codec_kind = "fp16"

    def tables(
        self, codec: ElasticLayout, fleet: FleetRegistry, model: ModelConfig, seed: int
    ) -> ServerTables:
        return stacked_tables([FP16Codec(fleet.n_items, model.dim)])

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        return Assignment.everyone(SINGLE_CONFIG.copy(), ctx.fleet.num_devices)

    def min_budget(self, model: ModelConfig, n_items: int) -> tuple[int, str]:
        return FP16Codec(n_items, model.dim).min_bytes(), "the whole table in float16"


METHOD = FullFP16()
