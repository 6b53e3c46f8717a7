"""federated.start_config: what budgeted devices train before the first estimator. popularity
gives each item group blocks in proportion to the mean popularity of its items, within the
budget; the run trains exactly those blocks and verification measures them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.model.elastic import ElasticLayout
from fedrule.search.base import uniform_blocks
from fedrule.search.customize import popularity_fit, start_config, uniform_fit


def _toy() -> ElasticLayout:
    """Group 0: item 0; group 1: items 1-3. Blocks of 2 float32 values: 8 and 24 bytes."""
    return ElasticLayout(dim=8, num_blocks=4, group_of_item=np.array([0, 1, 1, 1]), min_blocks=1)


def test_blocks_follow_the_mean_popularity_of_a_groups_items():
    layout = _toy()
    counts = np.array([6, 2, 2, 2])  # half the interactions each; per item 6 against 2
    budget = layout.metadata_bytes + 4 * 8 + 1 * 24  # room for 4 blocks of group 0 and 1 of 1
    got = popularity_fit(layout, budget, counts)
    # scale 4: floor(4 * 1) = 4 and floor(4 / 3) = 1 blocks cost 56 bytes; scale 6 would give
    # group 1 two blocks (80 bytes); no leftover fits another block
    np.testing.assert_array_equal(got, [[1, 1, 1, 1], [1, 0, 0, 0]])
    assert layout.memory_bytes(got) == budget
    # the uniform fit of the same budget: one block everywhere (two would cost 64 bytes)
    np.testing.assert_array_equal(uniform_fit(layout, budget), [[1, 0, 0, 0], [1, 0, 0, 0]])
    uniform = start_config(layout, budget, counts, "uniform")
    np.testing.assert_array_equal(uniform, uniform_fit(layout, budget))
    np.testing.assert_array_equal(start_config(layout, budget, counts, "popularity"), got)


def test_leftover_bytes_go_to_the_most_popular_group_first():
    # groups of 1, 1 and 2 items; blocks of 2 float32 values: 8, 8 and 16 bytes
    layout = ElasticLayout(dim=16, num_blocks=8, group_of_item=np.array([0, 1, 2, 2]))
    counts = np.array([5, 4, 2, 2])  # mean popularity per item 5, 4, 2: ratios 1, 0.8, 0.4
    budget = layout.metadata_bytes + 80
    got = popularity_fit(layout, budget, counts)
    # scale 4 gives [4, 3, 1] (72 bytes), scale 5 [5, 4, 2] (104): 8 bytes are left, which
    # give group 0 a fifth block; group 1's next block would cost 88 bytes
    np.testing.assert_array_equal(got.sum(axis=1), [5, 3, 1])
    assert layout.memory_bytes(got) == budget


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=3, max_size=12),
    st.integers(1, 4),
    st.integers(1, 2),
    st.floats(0.0, 1.0),
)
def test_a_popularity_fit_is_valid_nested_and_fits(counts, groups, min_blocks, share):
    counts = np.array(counts)
    group_of_item = np.arange(counts.size) % groups
    layout = ElasticLayout(8, 4, group_of_item, min_blocks=min_blocks)
    budget = layout.min_bytes() + int(share * (layout.full_table_bytes - layout.min_bytes()))
    got = popularity_fit(layout, budget, counts)
    assert layout.is_valid(got) and layout.memory_bytes(got) <= budget
    kept = got.sum(axis=1)
    np.testing.assert_array_equal(got, np.arange(4)[None, :] < kept[:, None])  # first blocks
    if counts.sum() == 0:  # every group as popular: at least the uniform fit everywhere
        assert kept.min() >= uniform_blocks(layout, budget)


def _run(observers=(), **patch):
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    one = [{"name": "only", "share": 1.0, "budget": 0.4}]
    raw = fleet_scenario(
        engine__transport="inprocess",
        federated__eval_every=0,
        federated__mode="budgeted",
        fleet__tiers=one,
        **patch,
    )
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    return run_federated_seed(scenario, split, 0, Silent(), observers=observers).results


@pytest.mark.parametrize("how", ["uniform", "popularity"])
def test_budgeted_devices_train_the_start_configuration_and_verification_measures_it(how):
    from tests.fleets import PhaseLog

    log = PhaseLog()
    results = _run(observers=[log], federated__start_config=how)
    verified = [
        np.asarray(c, bool) for p in log.phases if p.name == "verification" for c in p.configs
    ]
    (budget,) = results.searches
    expected = start_config(results.layout, budget, results.popularity, how)
    trained = results.coverage.weight > 0  # one tier and no refit: only its start blocks
    np.testing.assert_array_equal(trained, expected)
    assert any(np.array_equal(c, expected) for c in verified)
    if how == "popularity":  # the toy's head group gets more blocks than its tail group
        kept = expected.sum(axis=1)
        assert kept[0] > kept[-1]


def test_start_config_outside_budgeted_mode_names_the_key():
    from fedrule.errors import ConfigError
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(federated__start_config="popularity"))
    assert err.value.path == "federated.start_config" and "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(federated__start_config="zipf"))
    assert err.value.path == "federated.start_config"
