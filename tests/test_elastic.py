"""Elastic table: groups, memory accounting, payload encode/decode (hand-checked and properties)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.errors import BudgetError
from fedrule.model.elastic import HEADER, ElasticLayout, decode, make_groups
from fedrule.model.mf import UNSCORED, configured_scores


def test_groups_by_count_and_mass():
    popularity = np.array([1, 100, 10, 5, 50, 2, 30, 0])
    by_count = make_groups(popularity, 4, "count")
    # popularity order: 1, 4, 6, 2, 3, 5, 0, 7 -> pairs per group
    assert by_count.tolist() == [3, 0, 1, 2, 0, 2, 1, 3]
    by_mass = make_groups(popularity, 2, "mass")
    # total 198, half 99: item 1 alone holds 100 -> group 0 = {1}, the rest group 1
    assert by_mass.tolist() == [1, 0, 1, 1, 1, 1, 1, 1]
    assert make_groups(popularity, 0).tolist() == list(range(8))


def test_every_group_is_non_empty_even_with_a_dominant_item():
    popularity = np.array([1000, 1, 1, 1, 1, 1])
    groups = make_groups(popularity, 4, "mass")
    assert sorted(set(groups.tolist())) == [0, 1, 2, 3]


def test_memory_hand_computed():
    layout = ElasticLayout(dim=8, num_blocks=4, group_of_item=np.array([0, 1, 1, 0, 1]))
    config = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    # values: group0 2 items x 2 blocks x 2 dims x 4 B = 32; group1 3 x 1 x 2 x 4 = 24
    # metadata: header 16 + mask ceil(8/8)=1 + map 5 x 1 = 22
    assert layout.memory_bytes(config) == 32 + 24 + HEADER.size + 1 + 5
    table = torch.arange(40, dtype=torch.float32).reshape(5, 8)
    assert len(layout.encode(table, config)) == layout.memory_bytes(config)
    assert layout.full_table_bytes == 5 * 8 * 4


def test_budget_below_minimum_names_both_numbers():
    layout = ElasticLayout(dim=8, num_blocks=4, group_of_item=np.zeros(10, dtype=np.int64))
    with pytest.raises(BudgetError, match=str(layout.min_bytes())):
        layout.check_budget(layout.min_bytes() - 1)


@st.composite
def layouts_and_configs(draw):
    n_items = draw(st.integers(1, 40))
    num_blocks = draw(st.sampled_from([1, 2, 4, 8]))
    width = draw(st.sampled_from([1, 2, 3]))
    num_groups = draw(st.integers(0, n_items))
    popularity = np.array(draw(st.lists(st.integers(0, 50), min_size=n_items, max_size=n_items)))
    groups = make_groups(popularity, num_groups, draw(st.sampled_from(["mass", "count"])))
    layout = ElasticLayout(
        dim=num_blocks * width,
        num_blocks=num_blocks,
        group_of_item=groups,
        min_blocks=0,
        bytes_per_value=draw(st.sampled_from([4, 2])),
        rescale=draw(st.booleans()),
    )
    seed = draw(st.integers(0, 2**31))
    config = np.random.default_rng(seed).random(layout.shape) < draw(st.floats(0, 1))
    return layout, config, seed


@settings(max_examples=60, deadline=None)
@given(layouts_and_configs())
def test_payload_size_is_memory_and_decoding_scores_like_the_masked_table(case):
    layout, config, seed = case
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(layout.n_items, layout.dim, generator=gen)
    if layout.bytes_per_value == 2:
        table = table.half().float()  # the payload stores float16 exactly
    users = torch.randn(3, layout.dim, generator=gen)
    payload = layout.encode(table, config)
    assert len(payload) == layout.memory_bytes(config)
    sub = decode(payload)
    assert np.array_equal(sub.config, config)
    assert np.array_equal(sub.layout.group_of_item, layout.group_of_item)
    expected = configured_scores(users, table, layout.item_weights(config))
    assert torch.allclose(sub.score(users), expected, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(layouts_and_configs())
def test_restricting_the_full_payload_is_decoding_the_configurations_payload(case):
    """``SubEmbedding.restrict``: cutting ``config`` from the decoded full table gives the very
    table (bit for bit), configuration and scores that ``config``'s own payload decodes to."""
    layout, config, seed = case
    table = torch.randn(layout.n_items, layout.dim, generator=torch.Generator().manual_seed(seed))
    full = decode(layout.encode(table, layout.full_config()))
    cut = full.restrict(config)
    sent = decode(layout.encode(table, config))
    assert torch.equal(cut.table, sent.table) and np.array_equal(cut.config, sent.config)
    users = torch.randn(2, layout.dim, generator=torch.Generator().manual_seed(seed + 1))
    assert torch.equal(cut.score(users), sent.score(users))


def test_items_without_blocks_rank_last():
    layout = ElasticLayout(dim=2, num_blocks=2, group_of_item=np.array([0, 1]), min_blocks=0)
    config = np.array([[False, False], [True, False]])
    table = torch.tensor([[5.0, 5.0], [-1.0, 0.0]])
    scores = decode(layout.encode(table, config)).score(torch.tensor([[1.0, 1.0]]))
    assert scores[0, 0] == UNSCORED and scores[0, 1] == -1.0


def test_diversity_matches_the_pairwise_definition():
    from fedrule.model.mf import diversity_per_item

    vecs = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    vecs[0, :3] = 0.0  # a zero block has no direction and adds nothing
    blocks = torch.nn.functional.normalize(vecs.reshape(5, 4, 3), dim=-1, eps=1e-8)
    gram = blocks @ blocks.transpose(1, 2)
    pairs = (gram.pow(2).sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).pow(2).sum(1)) / 12
    assert torch.allclose(diversity_per_item(vecs, 4), pairs, atol=1e-6)
    same = torch.ones(1, 8)  # identical blocks: every pair has cosine 1
    assert diversity_per_item(same, 4).item() == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 2), st.sampled_from(["random", "sandwich", "popular"]))
def test_sub_configurations_keep_their_lowest_scored_blocks(seed, min_blocks, sampling):
    """Each drawn configuration keeps, per group, exactly its drawn count of blocks: those with
    the lowest scores."""
    from fedrule.model.supernet import build_subconfigs, draw_subconfigs

    layout = ElasticLayout(16, 8, make_groups(np.arange(1, 41), 3), min_blocks=min_blocks)
    rng = np.random.default_rng(seed)
    draws = [draw_subconfigs(layout, sampling, rng, steps) for steps in (3, 1, 4)]
    configs = build_subconfigs(draws, layout)
    counts = np.concatenate([d.counts for d in draws])
    scores = np.concatenate([d.scores for d in draws])
    assert np.array_equal(configs.sum(-1), counts)
    ranks = np.argsort(np.argsort(scores, axis=-1), axis=-1)
    assert np.array_equal(configs, ranks < counts[..., None])


def test_popular_counts_follow_group_popularity_by_hand():
    """Groups of 1, 2 and 4 items (equal mass: mean popularity 1, 1/2, 1/4). With the scale's
    draw at its top every group is full; at the bottom the most popular group keeps one block,
    the others the minimum."""
    from fedrule.model.supernet import popular_counts

    layout = ElasticLayout(8, 4, np.repeat(np.arange(3), [1, 2, 4]), min_blocks=1)

    class Fixed:  # the scale's exponent draw, then the per-group dithers
        def __init__(self, u: float) -> None:
            self.u = u

        def uniform(self, low: float, high: float, size: tuple[int, int]) -> np.ndarray:
            return np.full(size, low + self.u * (high - low))

        def random(self, size: tuple[int, int]) -> np.ndarray:
            return np.zeros(size)

    # top: log-scale log(4 / (1/4) + 1) = log 17, so s = 17: 17, 8.5, 4.25 blocks, clipped to 4
    assert popular_counts(layout, Fixed(1.0), 1).tolist() == [[4, 4, 4]]  # type: ignore[arg-type]
    # bottom: s = 1: 1, 0.5, 0.25 blocks, floored and kept at min_blocks 1
    assert popular_counts(layout, Fixed(0.0), 1).tolist() == [[1, 1, 1]]  # type: ignore[arg-type]
    # halfway: s = sqrt(17) = 4.12: 4.12, 2.06, 1.03 blocks
    assert popular_counts(layout, Fixed(0.5), 1).tolist() == [[4, 2, 1]]  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 2))
def test_popular_sampling_gives_popular_groups_more_blocks(seed, min_blocks):
    """The sandwich's smallest configuration comes first; the second one keeps, per step, no
    fewer blocks (up to the dither's one) in a more popular group (groups are numbered most
    popular first), within [min_blocks, B]."""
    from fedrule.model.supernet import draw_subconfigs

    layout = ElasticLayout(16, 8, make_groups(np.arange(1, 41), 3), min_blocks=min_blocks)
    draws = draw_subconfigs(layout, "popular", np.random.default_rng(seed), 50)
    assert (draws.counts[:, 0] == max(min_blocks, 1)).all()
    popular = draws.counts[:, 1]
    assert popular.min() >= min_blocks and popular.max() <= 8
    assert (np.diff(popular, axis=1) <= 1).all()
    mean = popular.mean(axis=0)
    assert mean[0] > mean[-1]
