"""The synthetic power-law generator: determinism, shape and sanity (speed is not timed)."""

from __future__ import annotations

import numpy as np
import pytest

from fedrule.data import generate_synthetic
from fedrule.errors import DataError


def test_same_seed_same_arrays_other_seed_differs() -> None:
    a = generate_synthetic(300, 500, 15, seed=7)
    b = generate_synthetic(300, 500, 15, seed=7)
    c = generate_synthetic(300, 500, 15, seed=8)
    for name in ("user", "item", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.item, c.item)


def test_shape_and_invariants() -> None:
    d = generate_synthetic(500, 800, 20, seed=0)
    assert (d.n_users, d.n_items) == (500, 800)
    assert d.user.dtype == np.int64 and d.item.dtype == np.int64
    assert d.timestamp.dtype == np.int64 and d.rating is None
    assert d.user.min() >= 0 and d.user.max() < 500 and d.item.max() < 800
    assert list(d.user_ids[:3]) == ["0", "1", "2"] and len(d.item_ids) == 800
    assert abs(d.n_interactions - 500 * 20) < 0.05 * 500 * 20
    counts = d.per_user_counts()
    assert counts.min() >= 5  # min_per_user
    keys = d.user * d.n_items + d.item
    assert len(np.unique(keys)) == len(keys)  # no repeated (user, item) pair
    assert np.all(np.diff(d.user) >= 0)  # grouped by user
    same_user = np.diff(d.user) == 0
    assert np.all(np.diff(d.timestamp)[same_user] > 0)  # chronological within a user


def test_power_law_popularity_and_activity() -> None:
    d = generate_synthetic(2000, 1000, 20, popularity_exponent=1.0, seed=0)
    pop = np.sort(d.per_item_counts())[::-1]
    top = pop[: len(pop) // 20].sum() / pop.sum()
    assert top > 0.3  # top 5% of items hold a large share
    activity = np.sort(d.per_user_counts())[::-1]
    assert activity[0] > 5 * np.median(activity)  # heavy-tailed user activity
    flat = generate_synthetic(2000, 1000, 20, popularity_exponent=0.0, seed=0)
    flat_pop = np.sort(flat.per_item_counts())[::-1]
    assert flat_pop[:50].sum() / flat_pop.sum() < 0.1


def test_no_timestamps_option() -> None:
    d = generate_synthetic(50, 60, 8, seed=1, with_timestamps=False)
    assert d.timestamp is None


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(DataError, match=r"synthetic\.interactions_per_user"):
        generate_synthetic(10, 5, 20)
    with pytest.raises(DataError, match=r"synthetic\.n_users"):
        generate_synthetic(0, 5, 3)
