"""Negative sampling: never a known positive, uniform or in proportion to popularity."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.model.negatives import NegativeSampler, popularity_weights


def test_uniform_draws_are_unchanged_by_the_weights_option():
    users, items = np.array([0, 0, 1]), np.array([1, 2, 0])
    plain = NegativeSampler(users, items, 6).sample(np.array([0, 1] * 50), np.random.default_rng(4))
    zero = NegativeSampler(users, items, 6, weights=popularity_weights(np.ones(6), 0.0))
    assert np.array_equal(plain, zero.sample(np.array([0, 1] * 50), np.random.default_rng(4)))


def test_popularity_weights_hand_computed():
    assert popularity_weights(np.array([3, 0, 8]), 0.0) is None
    assert np.allclose(popularity_weights(np.array([3, 0, 8]), 0.5), [2.0, 1.0, 3.0])


def test_draws_follow_the_weights_renormalised_over_non_positives():
    weights = popularity_weights(np.array([0, 9, 99, 0, 0]), 1.0)  # 1, 10, 100, 1, 1
    sampler = NegativeSampler(np.array([0]), np.array([4]), 5, weights=weights)
    drawn = sampler.sample(np.zeros(200_000, dtype=np.int64), np.random.default_rng(0))
    share = np.bincount(drawn.ravel(), minlength=5) / drawn.size
    assert share[4] == 0  # the user's positive
    assert np.allclose(share[:4], np.array([1, 10, 100, 1]) / 112, atol=0.004)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**31), st.floats(0, 2), st.integers(2, 60))
def test_never_a_positive(seed, exponent, n_items):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(4), 3)
    items = rng.integers(0, n_items, size=users.size)
    popularity = rng.integers(0, 50, size=n_items)
    sampler = NegativeSampler(
        users, items, n_items, weights=popularity_weights(popularity, exponent)
    )
    drawn = sampler.sample(np.arange(4), rng, per_user=20)
    assert drawn.min() >= 0 and drawn.max() < n_items
    if n_items >= 30:  # at most 3 positives each: a clash survives 8 uniform redraws (1/10)^8
        assert not sampler.is_positive(np.repeat(np.arange(4), 20), drawn.ravel()).any()


def test_a_federated_run_with_popularity_negatives_trains_another_table():
    """End to end (in-process transport): the key reaches the devices and changes what they
    learn; the same key and seed give the same table."""
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    tables = {}
    for name, exponent in (("uniform", 0.0), ("popular", 1.0), ("again", 1.0)):
        raw = fleet_scenario(engine__transport="inprocess", search__verify=False)
        raw["train"]["negative_exponent"] = exponent
        scenario = scenario_from_dict(raw)
        split = prepare_split(scenario.data, 0)
        tables[name] = run_federated_seed(scenario, split, 0, Silent()).results.table
    assert not np.array_equal(tables["uniform"], tables["popular"])
    assert np.array_equal(tables["popular"], tables["again"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1e4), min_size=1, max_size=300).filter(lambda w: sum(w) > 0),
    st.integers(0, 2**31),
)
def test_the_guide_table_draws_what_a_binary_search_draws(weights, seed):
    from fedrule.model.negatives import ItemDistribution

    by = ItemDistribution(np.array(weights))
    u = np.random.default_rng(seed).random((50, 100))
    u[0, :3] = [0.0, np.nextafter(1.0, 0.0), by.cdf[0] if by.cdf[0] < 1 else 0.5]  # ends, a bound
    expected = np.minimum(np.searchsorted(by.cdf, u, side="right"), len(weights) - 1)
    assert np.array_equal(by.items(u), expected)
