"""``rule``: the elastic supernet, the estimator and a search per budget (RULE).

Full mode: every device trains the full table. Budgeted mode: each device trains its budget's
configuration, the start configuration (``federated.start_config``) until an estimator exists
and the searched one after each refit (``federated.refit_every``). After training the server
labels configurations, fits the estimator, searches every distinct budget and dispatches each
device its budget's searched configuration.
"""

from __future__ import annotations

import numpy as np

from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.dispatch import searched_assignment
from fedrule.algorithm.methods.base import FederatedMethod
from fedrule.algorithm.state import ServerState
from fedrule.scenario.schema import Scenario
from fedrule.scenario.validate import require
from fedrule.search import customize


class Rule(FederatedMethod):
    name = "rule"
    labels_and_searches = True
    trains_subconfigs = True

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        fleet, codec, fed = ctx.fleet, ctx.codec, ctx.scenario.federated
        if fed.mode == "full":
            return Assignment.everyone(codec.full_config(), fleet.num_devices)
        budgets, index = np.unique(fleet.budget_bytes, return_inverse=True)
        if state.estimator is None:
            how = fed.start_config
            configs = [customize.start_config(codec, int(b), ctx.popularity, how) for b in budgets]
        else:  # increasing budgets, each warm-started with the smaller ones' results
            found = customize.search_all(
                codec, budgets, state.estimator, ctx.scenario.search, ctx.seed
            )
            configs = [found[int(budget)].config for budget in budgets]
        return Assignment.one_table(configs, index.astype(np.int64))

    def dispatch_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        """Every device its budget's searched configuration."""
        return searched_assignment(state.searches, ctx.fleet.budget_bytes)

    def refit_due(self, scenario: Scenario, round_number: int) -> bool:
        fed = scenario.federated
        every = fed.refit_every if fed.mode == "budgeted" else 0
        return bool(every) and round_number > 1 and (round_number - 1) % every == 0

    def check(self, scenario: Scenario) -> None:
        require(
            not scenario.eval.every_device or scenario.engine.kind == "federated",
            "tests every budget's searched configuration on every device: only a federated "
            "rule run searches",
            path="eval.every_device",
        )


RULE = Rule()
