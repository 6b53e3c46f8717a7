"""Checks of a scenario against the data it runs on, before any training: values that would
otherwise be clamped or ignored without a word are one-line errors naming the key."""

from __future__ import annotations

import math

import numpy as np

from fedrule.data.split import SplitData
from fedrule.errors import ConfigError
from fedrule.scenario.schema import Scenario


def check_against_data(scenario: Scenario, split: SplitData) -> None:
    n_items = int(split.n_items)
    model, evaluation = scenario.model, scenario.eval
    if model.groups > n_items:
        raise ConfigError(
            f"{model.groups} groups for {n_items} items",
            path="model.groups",
            hint="use at most the number of items, or 0 for one group per item",
        )
    too_long = [k for k in evaluation.ks if k > n_items]
    if too_long:
        raise ConfigError(
            f"cut-off {too_long[0]} is above the {n_items} items of the catalogue", path="eval.ks"
        )
    evaluable = int((np.diff(split.valid.indptr) > 0).sum())
    needs_labels = scenario.engine.kind == "federated" or bool(scenario.search.budgets)
    if needs_labels and evaluable < 2:
        raise ConfigError(
            f"{evaluable} user(s) have a validation item: too few to label configurations and "
            "fit the estimator",
            path="data",
            hint="more users, or a split that keeps validation items",
        )
    if scenario.engine.kind == "federated":
        _check_fleet(scenario, split)


def _check_fleet(scenario: Scenario, split: SplitData) -> None:
    if scenario.fleet.trace is not None:
        return  # the trace names its devices; they are checked when it is read
    eligible = int((np.diff(split.train.indptr) > 0).sum())
    wanted = scenario.fleet.num_devices
    if wanted > eligible:
        raise ConfigError(
            f"asks for {wanted} devices but only {eligible} users have training data",
            path="fleet.num_devices",
        )


def check_round_size(scenario: Scenario, fleet_size: int) -> None:
    per_round = scenario.federated.devices_per_round
    count = math.ceil(per_round * fleet_size) if per_round <= 1 else int(per_round)
    if count > fleet_size:
        raise ConfigError(
            f"asks for {count} devices per round but the fleet has {fleet_size}",
            path="federated.devices_per_round",
            hint="a share <= 1, or a count up to the fleet size",
        )
