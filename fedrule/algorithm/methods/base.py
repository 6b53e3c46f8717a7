"""``FederatedMethod``: what one value of ``federated.method`` decides, in one object.

A method says which tables the server trains and how they start (``tables``,
``initial_table``), who trains what in a round (``training_assignment``), whether the server
labels configurations and searches one per budget (``labels_and_searches``), what each device
receives at the end (``dispatch_assignment``), the payload format of its devices
(``codec_kind``), which scenarios it can run (``check``) and the smallest budget it can serve
(``min_budget``). ``FleetServer.run`` and the engine read nothing else of it, so a new method is
one module that subclasses this and registers an instance (``fedrule.algorithm.methods``).

The defaults are those of a method that trains one elastic table with plain BPR and
dispatches what its devices trained, as the baselines of RULE do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from fedrule import seeds
from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import FleetRegistry, ServerContext
from fedrule.algorithm.state import ServerState
from fedrule.algorithm.tables import ServerTables, elastic_tables
from fedrule.errors import ConfigError
from fedrule.model.codec import elastic_codec
from fedrule.model.elastic import ElasticLayout
from fedrule.registry import METHODS
from fedrule.scenario.schema import ModelConfig, Scenario
from fedrule.scenario.validate import options_from, require


class FederatedMethod(ABC):
    name: ClassVar[str]  # its ``federated.method`` value
    codec_kind: ClassVar[str] = "elastic"  # the payload format: a name in fedrule.registry.CODECS
    trains: ClassVar[bool] = True  # runs training rounds (popularity: no model, no rounds)
    labels_and_searches: ClassVar[bool] = False  # labels, fits the estimator, searches (RULE)
    # devices train sampled sub-configurations with the diversity term (RULE's supernet);
    # else plain BPR on what they hold
    trains_subconfigs: ClassVar[bool] = False
    personalizes: ClassVar[bool] = True  # devices fit their user vector before they test
    tables_per_tier: ClassVar[bool] = False  # one table per tier: cohorts never mix tiers
    # its options dataclass (federated.method_options; None: it takes none)
    options: ClassVar[type | None] = None

    def settings(self, scenario: Scenario) -> Any:
        """Its options in ``scenario`` (an instance of ``options``; None without options)."""
        return options_from(self, scenario.federated.method_options)

    @property
    def elastic(self) -> bool:
        """Do its devices hold elastic tables (blocks per item group)?"""
        return self.codec_kind == "elastic"

    @property
    def supports_central_dp(self) -> bool:
        """Central DP samples and noises one elastic table: a method that trains one."""
        return self.trains and self.elastic and not self.tables_per_tier

    # ------------------------------------------------------------------ the server's tables
    def tables(
        self, codec: ElasticLayout, fleet: FleetRegistry, model: ModelConfig, seed: int
    ) -> ServerTables:
        """The tables the server trains (``fedrule.algorithm.tables``): one elastic table."""
        return elastic_tables(codec, 1)

    def initial_table(
        self, tables: ServerTables, model: ModelConfig, seed: int, popularity: np.ndarray
    ) -> np.ndarray:
        """The server's initial array: every elastic table from the same N(0, init_std)
        draw."""
        rng = seeds.server_rng(seed, seeds.TABLE_INIT)
        n_items = tables.codecs[0].n_items
        one = (rng.standard_normal((n_items, model.dim)) * model.init_std).astype(np.float32)
        return np.tile(one, (len(tables.codecs), 1))

    def item_array(self, table: np.ndarray, tables: ServerTables) -> np.ndarray:
        """The trained array as the run's model file stores it (``item``)."""
        return table

    # ------------------------------------------------------------------ who holds what
    @abstractmethod
    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        """Who trains what in a round (``fedrule.algorithm.assignment``)."""

    def dispatch_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        """What each device receives at the end: what it trained."""
        return self.training_assignment(ctx, state)

    def refit_due(self, scenario: Scenario, round_number: int) -> bool:
        """Relabel and refit the estimator before this round (and then reassign)?"""
        return False

    # ------------------------------------------------------------------ what it can run
    def check(self, scenario: Scenario) -> None:
        """One-line ``ConfigError``s for the scenarios it cannot run. By default those of a
        method whose devices train what they receive, in full mode, on a federated engine."""
        name, privacy = self.name, scenario.privacy
        require(
            not scenario.eval.every_device,
            "tests every budget's searched configuration on every device: only a federated "
            "rule run searches",
            path="eval.every_device",
        )
        require(
            scenario.federated.mode == "full",
            f"budgeted mode trains searched blocks, which only rule has: {name} devices train "
            "what they receive",
            path="federated.mode",
        )
        require(
            self.elastic or scenario.train.negative_exponent == 0,
            f"{name} devices receive no item groups to estimate popularity from (popularity: "
            "no training): negatives stay uniform",
            path="train.negative_exponent",
            hint="set train.negative_exponent: 0",
        )
        require(
            scenario.engine.kind == "federated",
            f"{name} is a federated baseline: set engine.kind: federated (centralised "
            "baselines: references.baselines)",
            path="federated.method",
        )
        require(
            not (privacy.decoys > 0 or privacy.dense),
            f"{name} devices do not upload supernet rows: decoy and dense uploads need "
            "federated.method: rule with mode: full",
            path="federated.method",
        )
        if privacy.central_dp and not self.supports_central_dp:
            able = ", ".join(m.name for m in METHODS if m.supports_central_dp)
            raise ConfigError(
                f"{name} does not train one elastic table: central DP (one sampled, noised "
                f"table) needs federated.method {able}",
                path="federated.method",
            )
        require(
            self.elastic or not privacy.audit,
            f"the leakage audit reads elastic payloads: {name} runs cannot be audited",
            path="privacy.audit",
        )

    def min_budget(self, model: ModelConfig, n_items: int) -> tuple[int, str]:
        """The smallest budget a device may have, in bytes, and what it holds."""
        # the minimum depends on the group count and sizes' sum, not on the popularity
        minimum = elastic_codec(model, np.ones(n_items)).min_bytes()
        return minimum, f"{model.min_blocks_per_group} block(s) per group + metadata"
