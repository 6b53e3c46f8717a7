"""Labelling configurations (against evaluate_ranking), features, and the performance estimator."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fedrule.data.split import UserItems
from fedrule.metrics import ConfigSums
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.model.evaluate import evaluate_ranking
from fedrule.model.mf import configured_scores
from fedrule.search import (
    ConfigFeatures,
    PerformanceEstimator,
    fit_estimator,
    group_popularity_share,
    label_configs,
    sample_configs,
    spearman,
)


def random_items(rng, n_users, n_items, low, high):
    users, items = [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, int(rng.integers(low, high + 1)), replace=False)
        users += [u] * len(chosen)
        items += list(chosen)
    return UserItems.from_coo(np.array(users, dtype=np.int64), np.array(items), n_users)


# ------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize(("min_blocks", "rescale"), [(1, False), (0, False), (0, True)])
def test_label_configs_equals_evaluate_ranking(min_blocks, rescale):
    rng = np.random.default_rng(min_blocks + 2 * rescale)
    n_users, n_items, dim, blocks, groups = 14, 40, 8, 4, 5
    popularity = rng.integers(0, 50, n_items)
    layout = ElasticLayout(dim, blocks, make_groups(popularity, groups), min_blocks, 4, rescale)
    users = torch.randn(n_users, dim)
    users[3] = 0.0  # every item ties for this user
    table = torch.randn(n_items, dim)
    table[7] = table[2]  # duplicate items tie
    train = random_items(rng, n_users, n_items, 1, 6)
    valid = random_items(rng, n_users, n_items, 0, 3)  # several, one or no relevant items
    split = SimpleNamespace(train=train, valid=valid, n_users=n_users)
    counts = rng.integers(min_blocks, blocks + 1, size=(9, groups))
    configs = np.stack([layout.random_config(rng, c) for c in counts])
    heads = torch.as_tensor(popularity > 25)
    ks = [1, 3, 10]
    got = label_configs(
        users,
        table,
        layout,
        configs,
        train.to_coo(),
        valid.to_coo(),
        ks,
        item_is_head=heads,
        batch_users=4,
    )
    assert isinstance(got, ConfigSums) and got.num_configs == len(configs)
    for c, config in enumerate(configs):
        weights = layout.item_weights(config)
        expected = evaluate_ranking(
            lambda rows, w=weights: configured_scores(users[rows], table, w),
            split,
            target="valid",
            ks=ks,
            item_is_head=heads,
            batch_users=5,
        )
        one = got.for_config(c)
        assert one.sums.keys() == expected.sums.keys()
        for key, value in expected.sums.items():
            assert one.sums[key] == pytest.approx(value, abs=1e-9), key
            assert one.counts[key] == expected.counts[key]


def test_label_configs_adds_up_over_single_user_devices():
    rng = np.random.default_rng(5)
    layout = ElasticLayout(8, 4, make_groups(rng.integers(0, 30, 30), 3))
    users, table = torch.randn(6, 8), torch.randn(30, 8)
    train = random_items(rng, 6, 30, 2, 5)
    valid = random_items(rng, 6, 30, 1, 1)
    configs = sample_configs(layout, 12, rng)
    server = label_configs(users, table, layout, configs, train.to_coo(), valid.to_coo(), [5])
    devices = ConfigSums({}, {})
    for u in range(6):  # a device knows only its own vector and items (row 0)
        ex = train.of(u)
        rel = valid.of(u)
        devices = devices + label_configs(
            users[u : u + 1],
            table,
            layout,
            configs,
            (np.zeros(ex.size, dtype=np.int64), ex),
            (np.zeros(rel.size, dtype=np.int64), rel),
            [5],
        )
    keys = list(server.sums)
    a_sums, a_counts = server.to_arrays(keys)
    b_sums, b_counts = devices.to_arrays(keys)
    np.testing.assert_allclose(a_sums, b_sums, atol=1e-9)
    np.testing.assert_array_equal(a_counts, b_counts)
    again = ConfigSums.from_arrays(keys, a_sums, a_counts)
    np.testing.assert_allclose(again.means()["ndcg@5"], server.means()["ndcg@5"])
    assert server.means()["hit@5"][0] >= 0  # full configuration labelled too


# ------------------------------------------------------------------------------------ features
def make_layout(n=150, groups=6, blocks=8, seed=0):
    popularity = np.random.default_rng(seed).zipf(1.4, n).astype(float)
    return ElasticLayout(16, blocks, make_groups(popularity, groups)), popularity


def test_features_are_linear_in_the_mask_and_named_sizes():
    layout, popularity = make_layout()
    share = group_popularity_share(layout, popularity)
    assert share.sum() == pytest.approx(1.0) and share[0] >= share[-1]
    features = ConfigFeatures.from_layout(layout, share)
    configs = sample_configs(layout, 20, np.random.default_rng(0))
    x = features(configs)
    assert x.shape == (20, 6 * 8 + 6 + 2) == (20, features.dim)
    np.testing.assert_allclose(x, configs.reshape(20, -1) @ features.matrix(), atol=1e-6)
    assert x[0, -2] == pytest.approx(1.0) and x[0, -1] == pytest.approx(1.0)  # full config
    with pytest.raises(ValueError, match="popularity_share"):
        ConfigFeatures.from_layout(layout, np.ones(3))


# ------------------------------------------------------------------------------------ estimator
def smooth_label(configs, share, rng):
    kept = configs.sum(axis=2) / configs.shape[2]
    return np.sqrt(kept) @ share + rng.normal(0.0, 0.005, len(configs))


def test_estimator_ranks_held_out_configurations():
    layout, popularity = make_layout()
    share = group_popularity_share(layout, popularity)
    rng = np.random.default_rng(1)
    configs = sample_configs(layout, 300, rng)
    labels = smooth_label(configs, share, rng)
    estimator, report = fit_estimator(
        layout, configs, labels, share, holdout_fraction=0.25, seed=0, hidden=(64, 64), epochs=60
    )
    assert report["n_configs"] == 300 and report["n_holdout"] == 75
    assert report["holdout_spearman"] > 0.9, report
    assert report["train_spearman"] > 0.9
    predictions = estimator.predict(configs)
    assert predictions.shape == (300,) and predictions.dtype == np.float64
    np.testing.assert_allclose(
        predictions, estimator.predict_features(estimator.features(configs)), atol=1e-4
    )
    assert estimator.predict(configs[0]).shape == (1,)


def test_estimator_is_deterministic_and_checkpoints():
    layout, popularity = make_layout(groups=4, blocks=4)
    share = group_popularity_share(layout, popularity)
    rng = np.random.default_rng(2)
    configs = sample_configs(layout, 80, rng)
    labels = smooth_label(configs, share, rng)
    features = ConfigFeatures.from_layout(layout, share)
    runs = []
    for _ in range(2):
        estimator = PerformanceEstimator(features, (32, 16), epochs=20)
        history = estimator.fit(configs, labels, seed=3)
        runs.append(estimator.predict(configs))
    assert len(history["loss"]) == 20 and history["loss"][-1] < history["loss"][0]
    np.testing.assert_array_equal(runs[0], runs[1])
    buffer = io.BytesIO()
    torch.save(estimator.state_dict(), buffer)
    buffer.seek(0)
    loaded = PerformanceEstimator.from_state(torch.load(buffer))
    np.testing.assert_array_equal(loaded.predict(configs), runs[1])
    other = PerformanceEstimator(features, (32, 16), epochs=20)
    other.fit(features(configs), labels, seed=4)  # feature rows work as inputs too
    assert not np.array_equal(other.predict(configs), runs[0])
    with pytest.raises(ValueError):
        other.fit(np.zeros((3, 5)), np.zeros(3), seed=0)


def test_spearman():
    assert spearman(np.arange(5), np.arange(5) ** 2) == pytest.approx(1.0)
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(4), np.arange(4)))
