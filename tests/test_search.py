"""Configuration sampling and the searchers: validity, budgets, known optima (tiny layouts)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrule.errors import BudgetError
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.search import SEARCHERS, sample_configs, search

FAST = {
    "evolution": {"cycles": 40, "population": 8, "sample": 3, "batch": 8},
    "random": {"samples": 30},
}


def make_layout(n=60, groups=6, blocks=8, dim=16, min_blocks=1, bytes_per_value=4, seed=0):
    popularity = np.random.default_rng(seed).zipf(1.4, n).astype(float)
    return ElasticLayout(dim, blocks, make_groups(popularity, groups), min_blocks, bytes_per_value)


def linear_predict(weights):
    """predicted = sum over groups of weight_g * kept blocks of g."""
    return lambda configs: configs.sum(axis=2) @ weights


def knapsack_optimum(layout, weights, budget):
    """Exact best of sum_g w_g k_g with min_blocks <= k_g <= B and memory <= budget (DP)."""
    unit = int(np.gcd.reduce(layout.bytes_per_block))
    cost = layout.bytes_per_block // unit
    capacity = (budget - layout.min_bytes()) // unit  # on top of the smallest configuration
    best = np.full(capacity + 1, -np.inf)
    best[0] = 0.0
    for g in range(layout.num_groups):
        extra = np.arange(layout.num_blocks - layout.min_blocks + 1)
        nxt = np.full_like(best, -np.inf)
        for k in extra:
            used = k * cost[g]
            if used > capacity:
                break
            nxt[used:] = np.maximum(nxt[used:], best[: capacity + 1 - used] + k * weights[g])
        best = nxt
    return float(best.max() + layout.min_blocks * weights.sum())


# ------------------------------------------------------------------------------------ sampling
def test_sample_configs_cover_the_memory_range():
    layout = make_layout(n=200, groups=8, blocks=8)
    configs = sample_configs(layout, 200, np.random.default_rng(0))
    assert configs.shape == (200, 8, 8) and configs.dtype == bool
    assert configs[0].all()
    assert np.array_equal(configs[1], layout.uniform_config(layout.min_blocks))
    assert all(layout.is_valid(c) for c in configs)
    sizes = layout.memory_bytes_many(configs)
    assert sizes.min() == layout.min_bytes()
    assert sizes.max() == layout.memory_bytes(layout.full_config())
    lo, hi = sizes.min(), sizes.max()
    histogram, _ = np.histogram((sizes - lo) / (hi - lo), bins=5, range=(0, 1))
    assert (histogram >= 15).all(), histogram  # spread over the whole range
    kept = configs.sum(axis=2)
    assert (kept[:, 0] > kept[:, -1]).sum() > 20  # some favour popular groups...
    assert (kept[:, 0] < kept[:, -1]).sum() > 20  # ...and some the others
    assert len({c.tobytes() for c in configs}) > 150


def test_sample_configs_small_counts_and_determinism():
    layout = make_layout()
    assert sample_configs(layout, 0, np.random.default_rng(0)).shape == (0, 6, 8)
    assert sample_configs(layout, 1, np.random.default_rng(0))[0].all()
    a = sample_configs(layout, 30, np.random.default_rng(3))
    b = sample_configs(layout, 30, np.random.default_rng(3))
    assert np.array_equal(a, b)


# ------------------------------------------------------------------------------------ searchers
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 40),
    groups=st.integers(1, 6),
    blocks=st.sampled_from([1, 2, 4, 8]),
    min_blocks=st.integers(0, 2),
    bytes_per_value=st.sampled_from([2, 4]),
    budget_share=st.floats(0.0, 1.2),
    seed=st.integers(0, 1000),
)
def test_every_searcher_returns_a_valid_configuration_that_fits(
    n, groups, blocks, min_blocks, bytes_per_value, budget_share, seed
):
    min_blocks = min(min_blocks, blocks)
    layout = make_layout(n, groups, blocks, 8, min_blocks, bytes_per_value, seed)
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=layout.shape)
    predict = lambda c: (c * weights).sum(axis=(1, 2)) + np.sqrt(c.sum(axis=(1, 2)))  # noqa: E731
    smallest, full = layout.min_bytes(), layout.memory_bytes(layout.full_config())
    budget = int(smallest + budget_share * (full - smallest))
    table = torch.randn(layout.n_items, layout.dim)
    for name in SEARCHERS:
        result = search(
            name, layout, budget, predict, np.random.default_rng(seed), **FAST.get(name, {})
        )
        config = result.config
        assert config.shape == layout.shape and config.dtype == bool
        assert layout.is_valid(config), name
        assert result.bytes == layout.memory_bytes(config) <= budget, name
        assert len(layout.encode(table, config)) == result.bytes
        assert result.predicted == pytest.approx(float(predict(config[None])[0]))
        assert result.evaluations >= 1 and result.seconds >= 0 and result.searcher == name


def test_uniform_never_loses_blocks_when_the_budget_grows():
    layout = make_layout(n=80, groups=5, blocks=8)
    predict = linear_predict(np.ones(5))
    budgets = np.linspace(layout.min_bytes(), layout.memory_bytes(layout.full_config()) + 50, 40)
    totals = [
        search("uniform", layout, int(b), predict, np.random.default_rng(0)).config.sum()
        for b in budgets
    ]
    assert totals == sorted(totals)
    assert totals[0] == layout.num_groups * layout.min_blocks
    assert totals[-1] == layout.num_groups * layout.num_blocks


def test_budget_below_the_minimum_raises_one_line_budget_error():
    layout = make_layout()
    budget = layout.min_bytes() - 1
    for name in SEARCHERS:
        with pytest.raises(BudgetError) as info:
            search(name, layout, budget, linear_predict(np.ones(6)), np.random.default_rng(0))
        message = str(info.value)
        assert str(budget) in message and str(layout.min_bytes()) in message
        assert "\n" not in message


def test_unknown_searcher_lists_the_known_ones():
    with pytest.raises(ValueError, match="evolution, greedy, uniform, random"):
        search("anneal", make_layout(), 10**6, linear_predict(np.ones(6)), np.random.default_rng(0))


@pytest.mark.parametrize("share", [0.15, 0.35, 0.6])
def test_greedy_and_evolution_approach_the_knapsack_optimum(share):
    layout = make_layout(n=120, groups=8, blocks=8, seed=1)
    rng = np.random.default_rng(7)
    # value per block proportional to size times a random factor: ratios differ across groups
    weights = layout.bytes_per_block / layout.bytes_per_block.mean() * rng.uniform(0.1, 1.0, 8)
    predict = linear_predict(weights)
    smallest, full = layout.min_bytes(), layout.memory_bytes(layout.full_config())
    budget = int(smallest + share * (full - smallest))
    optimum = knapsack_optimum(layout, weights, budget)
    uniform = search("uniform", layout, budget, predict, np.random.default_rng(0)).predicted
    for name in ("greedy", "evolution"):
        found = search(name, layout, budget, predict, np.random.default_rng(0)).predicted
        assert uniform <= found <= optimum + 1e-9, name
        assert found >= optimum - 0.03 * abs(optimum), (name, found, optimum)


def test_evolution_is_deterministic_given_the_generator():
    layout = make_layout(n=100, groups=6, blocks=8)
    weights = np.random.default_rng(1).uniform(size=layout.shape)
    predict = lambda c: np.sqrt((c * weights).sum(axis=2)).sum(axis=1)  # noqa: E731
    budget = layout.memory_bytes(layout.uniform_config(4))
    a = search("evolution", layout, budget, predict, np.random.default_rng(5))
    b = search("evolution", layout, budget, predict, np.random.default_rng(5))
    assert np.array_equal(a.config, b.config) and a.evaluations == b.evaluations


def test_greedy_all_candidates_and_swaps():
    layout = make_layout(n=100, groups=6, blocks=8)
    weights = np.random.default_rng(2).uniform(size=layout.shape)
    predict = lambda c: np.sqrt((c * weights).sum(axis=2)).sum(axis=1)  # noqa: E731
    budget = layout.memory_bytes(layout.uniform_config(3)) + 100
    plain = search("greedy", layout, budget, predict, np.random.default_rng(0))
    every = search("greedy", layout, budget, predict, np.random.default_rng(0), candidates="all")
    swaps = search("greedy", layout, budget, predict, np.random.default_rng(0), swaps=5)
    uniform = search("uniform", layout, budget, predict, np.random.default_rng(0))
    assert min(plain.predicted, every.predicted) >= uniform.predicted
    assert swaps.predicted >= plain.predicted
    with pytest.raises(ValueError, match="candidates"):
        search("greedy", layout, budget, predict, np.random.default_rng(0), candidates="some")


def test_searchers_are_the_names_list():
    from fedrule.names import SEARCHER_NAMES

    assert tuple(SEARCHERS) == SEARCHER_NAMES
