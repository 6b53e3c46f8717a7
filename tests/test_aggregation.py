"""Aggregation on hand-computed examples."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.algorithm.aggregation import RowBlockAggregator


def test_entries_updated_by_some_devices_only():
    table = np.zeros((3, 4), dtype=np.float32)  # 2 blocks of width 2
    agg = RowBlockAggregator(3, 4, 2)
    # device A (weight 1) updates row 0 both blocks by +1; device B (weight 3) row 0 block 0 by +5
    agg.add(np.array([0]), np.array([[1.0, 1.0, 1.0, 1.0]]), np.array([[1.0, 1.0]]))
    agg.add(np.array([0]), np.array([[15.0, 15.0, 0.0, 0.0]]), np.array([[3.0, 0.0]]))
    # device C (weight 2) updates row 2 block 1 by -1
    agg.add(np.array([2]), np.array([[0.0, 0.0, -2.0, -2.0]]), np.array([[0.0, 2.0]]))
    new = agg.apply(table)
    assert new[0].tolist() == [4.0, 4.0, 1.0, 1.0]  # block 0: (1*1 + 3*5)/4 = 4; block 1: A only
    assert new[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # nobody touched row 1
    assert new[2].tolist() == [0.0, 0.0, -1.0, -1.0]
    assert agg.updated_entries == 3


def test_server_learning_rate_scales_the_step():
    agg = RowBlockAggregator(1, 2, 1)
    agg.add(np.array([0]), np.array([[2.0, 4.0]]), np.array([[2.0]]))
    assert agg.apply(np.ones((1, 2)), server_lr=0.5).tolist() == [[1.5, 2.0]]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31))
def test_all_devices_updating_everything_is_plain_fedavg(num_devices, n_items, seed):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n_items, 4))
    weights = rng.integers(1, 20, size=num_devices).astype(float)
    locals_ = [table + rng.normal(size=table.shape) for _ in range(num_devices)]
    agg = RowBlockAggregator(n_items, 4, 2)
    rows = np.arange(n_items)
    for w, local in zip(weights, locals_, strict=True):
        agg.add(rows, w * (local - table), np.full((n_items, 2), w))
    fedavg = sum(w * local for w, local in zip(weights, locals_, strict=True)) / weights.sum()
    assert np.allclose(agg.apply(table), fedavg)


def test_repeated_rows_accumulate():
    agg = RowBlockAggregator(2, 2, 1)
    agg.add(np.array([1, 1]), np.array([[1.0, 1.0], [3.0, 3.0]]), np.array([[1.0], [1.0]]))
    assert agg.apply(np.zeros((2, 2))).tolist() == [[0, 0], [2.0, 2.0]]
