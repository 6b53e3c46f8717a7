"""Metric values on hand-computed examples, and mergeability."""

import math

import numpy as np
import pytest
import torch

from fedrule.metrics import (
    ConfigSums,
    ItemOrder,
    MetricSums,
    RelevantRanks,
    config_sums_from_ranks,
    head_items,
    ranking_sums,
    ranks_of_relevant,
)

INF = float("-inf")


def test_two_relevant_items_hand_computed():
    # ranking: item1 (0.9), item3 (0.7), item2 (0.5), item4 (0.1); item0 excluded
    scores = torch.tensor([[INF, 0.9, 0.5, 0.7, 0.1]])
    sums = ranking_sums(scores, torch.tensor([0, 0]), torch.tensor([2, 4]), [1, 3, 5])
    m = sums.means()
    idcg2 = 1 + 1 / math.log2(3)
    assert m["hit@1"] == 0 and m["recall@1"] == 0 and m["ndcg@1"] == 0
    assert m["recall@3"] == pytest.approx(0.5)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4)) / idcg2)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(5)) / idcg2)
    assert m["hit@3"] == 1.0


def test_ideal_dcg_is_capped_at_k():
    # three relevant items ranked 0, 1, 2: NDCG@2 uses ideal over min(3, 2) = 2 -> 1.0
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1]])
    m = ranking_sums(scores, torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]), [2]).means()
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["recall@2"] == pytest.approx(2 / 3)


def test_ties_are_broken_by_item_index():
    scores = torch.zeros(1, 4)
    # all tied: relevant item 2 has two items with smaller index before it -> rank 2
    m = ranking_sums(scores, torch.tensor([0]), torch.tensor([2]), [2, 3]).means()
    assert m["hit@2"] == 0 and m["hit@3"] == 1
    assert m["ndcg@3"] == pytest.approx(1 / math.log2(4))


def test_users_without_relevant_items_are_not_counted_and_sums_merge():
    scores = torch.tensor([[0.1, 0.9], [0.9, 0.1]])
    both = ranking_sums(scores, torch.tensor([0, 1]), torch.tensor([1, 1]), [1])
    first = ranking_sums(scores[:1], torch.tensor([0]), torch.tensor([1]), [1])
    second = ranking_sums(scores[1:], torch.tensor([0]), torch.tensor([1]), [1])
    merged = first + second
    assert merged.means() == pytest.approx(both.means())
    assert both.counts["hit@1"] == 2 and both.means()["hit@1"] == pytest.approx(0.5)
    only_one = ranking_sums(scores, torch.tensor([0]), torch.tensor([1]), [1])
    assert only_one.counts["hit@1"] == 1


def test_buckets_count_only_users_with_items_there():
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.1, 0.2, 0.9]])
    is_head = torch.tensor([True, False, False])
    sums = ranking_sums(scores, torch.tensor([0, 1]), torch.tensor([0, 2]), [1], is_head)
    m = sums.means()
    assert sums.counts["head/hit@1"] == 1 and m["head/hit@1"] == 1.0
    assert sums.counts["tail/hit@1"] == 1 and m["tail/hit@1"] == 1.0


def test_head_items_hold_the_share():
    popularity = np.array([1, 50, 30, 10, 9])
    # order 1 (50), 2 (30), 3, 4, 0; shares before: 0, .5, .8, .9, .99
    assert head_items(popularity, 0.5).tolist() == [False, True, False, False, False]
    assert head_items(popularity, 0.6).tolist() == [False, True, True, False, False]


def test_metric_sums_round_trip_arrays():
    sums = MetricSums({"a": 1.5, "b": 2.0}, {"a": 3.0, "b": 4.0})
    s, c = sums.to_arrays(["a", "b"])
    assert MetricSums.from_arrays(["a", "b"], s, c) == sums


def brute_force_rank(row: np.ndarray, item: int) -> int:
    """The protocol spelled out: strictly higher scores, plus ties with a smaller item index."""
    own = row[item]
    if np.isnan(own):
        return row.size
    return int((row > own).sum() + (row[:item] == own).sum())


@pytest.mark.parametrize("num_configs", [1, 3, 8, 16])
def test_batched_kernel_over_segments_matches_the_protocol(num_configs):
    rng = np.random.default_rng(num_configs)
    n_items, n_rows = 23, 6
    segment_of_item = rng.integers(0, 4, n_items)
    order = ItemOrder(segment_of_item, 4)
    scores = rng.integers(0, 3, (num_configs, n_rows, n_items)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[0, 0, 5] = np.nan
    rows = np.array([0, 0, 0, 1, 3, 3, 5])  # several pairs per row, rows without pairs
    items = np.array([5, 0, 22, 7, 7, 1, 13])
    by_position = np.ascontiguousarray(scores[:, :, order.order].transpose(2, 1, 0))  # n x u x c
    got = RelevantRanks(order, rows, items, n_rows)(by_position)
    expected = [
        [brute_force_rank(scores[c, r], i) for r, i in zip(rows, items, strict=True)]
        for c in range(num_configs)
    ]
    assert got.tolist() == expected
    one = ranks_of_relevant(
        torch.from_numpy(scores[0]), torch.from_numpy(rows), torch.from_numpy(items)
    )
    assert one.tolist() == expected[0]


def test_config_sums_equal_ranking_sums_per_configuration_and_merge():
    rng = np.random.default_rng(3)
    scores = torch.from_numpy(rng.standard_normal((3, 5, 12)).astype(np.float32))
    rows, items = torch.tensor([0, 1, 1, 4]), torch.tensor([3, 0, 9, 11])
    is_head = torch.from_numpy(rng.random(12) < 0.5)
    ranks = np.stack([ranks_of_relevant(s, rows, items).numpy() for s in scores])
    sums = config_sums_from_ranks(ranks, rows.numpy(), items.numpy(), 5, [1, 5], is_head.numpy())
    assert sums.num_configs == 3
    for c in range(3):
        expected = ranking_sums(scores[c], rows, items, [1, 5], is_head)
        assert sums.for_config(c).sums == pytest.approx(expected.sums)
        assert sums.for_config(c).counts == expected.counts
    keys = list(sums.sums)
    doubled = sums + ConfigSums.from_arrays(keys, *sums.to_arrays(keys))
    np.testing.assert_allclose(doubled.means()["ndcg@5"], sums.means()["ndcg@5"])
    assert doubled.counts["recall@1"] == 2 * sums.counts["recall@1"] == 6
