"""Federated methods behind the registry (``fedrule.algorithm.methods``): the built-in ones' own
answers, and a new method as one class registered at run time, run end to end in-process with
no edit to fedrule."""

from __future__ import annotations

import numpy as np
import pytest

from fedrule.algorithm.assignment import Assignment
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.methods import METHODS, FederatedMethod, get_method, register_method
from fedrule.algorithm.state import ServerState
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict
from fedrule.search.base import uniform_blocks
from tests.fleets import PhaseLog, fleet_scenario

BUILT_IN = ("rule", "nested", "per-tier", "full-prefix", "hashing", "qr", "popularity")


class UniformHalf(FederatedMethod):
    """The toy of docs/architecture.md: every device trains and receives the first half of
    the blocks of every item group (fewer where its budget holds fewer)."""

    name = "uniform-half"

    def training_assignment(self, ctx: ServerContext, state: ServerState) -> Assignment:
        codec = ctx.codec
        budgets, index = np.unique(ctx.fleet.budget_bytes, return_inverse=True)
        half = codec.num_blocks // 2
        configs = [codec.uniform_config(min(half, uniform_blocks(codec, b))) for b in budgets]
        return Assignment.one_table(configs, index)


@pytest.fixture
def uniform_half():
    method = register_method(UniformHalf())
    yield method
    METHODS.unregister(method.name)


def test_the_built_in_methods_are_registered_in_order():
    assert METHODS.names()[: len(BUILT_IN)] == BUILT_IN
    assert [get_method(n).name for n in BUILT_IN] == list(BUILT_IN)


def test_only_rule_labels_searches_and_trains_a_supernet():
    for name in BUILT_IN:
        method = get_method(name)
        assert method.labels_and_searches == method.trains_subconfigs == (name == "rule")
    assert not get_method("popularity").trains and not get_method("popularity").personalizes
    assert {n for n in BUILT_IN if get_method(n).tables_per_tier} == {"per-tier", "hashing", "qr"}
    assert {n for n in BUILT_IN if get_method(n).supports_central_dp} == {
        "rule",
        "nested",
        "full-prefix",
    }


def test_the_smallest_budget_of_each_format():
    """The toy's d = 8 floats over 60 items in 3 groups of 4 blocks: an elastic payload of one
    block per group is 16 + 2 + 60 + 60 * 2 * 4 = 558 bytes; a hashed row 20 + 32; QR
    ceil(60 / 8) + 8 = 16 rows after a 12-byte header; the ranking 8 + 60 one-byte ids."""
    model = scenario_from_dict(fleet_scenario()).model
    least = {name: get_method(name).min_budget(model, 60)[0] for name in BUILT_IN}
    assert least == {
        "rule": 558,
        "nested": 558,
        "per-tier": 558,
        "full-prefix": 558,
        "hashing": 52,
        "qr": 12 + 16 * 32,
        "popularity": 68,
    }


def test_an_unregistered_method_is_one_line_naming_the_key_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(federated__method="uniform-half"))
    assert err.value.path == "federated.method" and "\n" not in str(err.value)
    assert all(name in str(err.value) for name in BUILT_IN)


def test_a_method_registered_at_run_time_runs_end_to_end(uniform_half):
    """Validated by the scenario schema, trained, validated and dispatched as its
    ``training_assignment`` says: the small tier (768 bytes) holds one block per group, the
    large one (1920 bytes) half of the 4; blocks 3 and 4 are never trained."""
    raw = fleet_scenario(
        engine__transport="inprocess", federated__method=uniform_half.name, federated__eval_every=1
    )
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    log = PhaseLog()
    res = run_federated_seed(scenario, split, 0, Silent(), observers=[log]).results
    assert [p.name for p in log.phases] == [
        "popularity count",
        *("training round 1", "validation 1", "validation 1"),  # a labelling per payload
        *("training round 2", "validation 2", "validation 2"),
        "dispatch",
    ]  # no labelling of candidates, no search: the method says so
    kept = {budget: found.config.sum(axis=1).tolist() for budget, found in res.searches.items()}
    assert kept == {768: [1, 1, 1], 1920: [2, 2, 2]}
    assert res.devices["accepted"].all()
    initial = uniform_half.initial_table(_tables(res.layout), scenario.model, 0, res.popularity)
    width = 2 * res.layout.block_dim
    np.testing.assert_array_equal(res.table[:, width:], initial[:, width:])
    assert not np.allclose(res.table[:, :width], initial[:, :width])
    assert all(0 < r["valid_ndcg@10"] <= 1 for r in res.rounds)
    assert res.estimator is None and res.label_report == {}


def _tables(layout):
    from fedrule.algorithm.tables import elastic_tables

    return elastic_tables(layout, 1)
