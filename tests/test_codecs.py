"""Baseline item-table codecs (hashing, quotient-remainder, popularity, uniform prefix): honest
memory, payload round trips, budget fitting, hand-checked compositions, and their trainer."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.errors import BudgetError, ConfigError
from fedrule.model.codec import ItemCodec, ReceivedTable
from fedrule.model.codecs import HashingCodec, PopularityCodec, QRCodec, hashing, qr
from fedrule.model.codecs.train import train_codec
from fedrule.model.elastic import ElasticLayout, make_groups

SIZES = {
    "n_items": st.integers(1, 300),
    "dim": st.integers(1, 12),
    "bytes_per_value": st.sampled_from([4, 2]),
    "budget": st.integers(0, 40_000),
    "seed": st.integers(0, 2**32 - 1),
}


def _table(shape, seed):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _stored(values: torch.Tensor, bytes_per_value: int) -> torch.Tensor:
    """Values as a device holds them (float16 payloads round)."""
    return values.half().float() if bytes_per_value == 2 else values


# ---------------------------------------------------------------------- hashing
def test_hash_hand_checked():
    # (3 i + 5) mod p mod 4 for i = 0..4: 5, 8, 11, 14, 17 -> 1, 0, 3, 2, 1
    assert hashing.hash_rows(np.arange(5), 3, 5, 4).tolist() == [1, 0, 3, 2, 1]
    # the mod p matters: a = p - 1, i = 2: 2p - 2 = p - 2 (mod p) = 2147483645 -> 5 (mod 10)
    assert hashing.hash_rows(np.array([1, 2]), hashing.PRIME - 1, 0, 10).tolist() == [6, 5]


def test_hashed_table_hand_checked():
    codec = HashingCodec(n_items=5, rows=4, dim=2, a=3, b=5)
    table = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    payload = codec.encode(table, codec.full_config())
    assert len(payload) == 20 + 4 * 2 * 4 == codec.memory_bytes(codec.full_config())
    received = codec.decode(payload)
    assert received.table.tolist() == [[2, 3], [0, 1], [6, 7], [4, 5], [2, 3]]
    assert received.score(torch.tensor([[1.0, 0.0]])).tolist() == [[2, 0, 6, 4, 2]]


@settings(max_examples=60, deadline=None)
@given(**SIZES)
def test_hashing_fits_the_budget_and_round_trips(n_items, dim, bytes_per_value, budget, seed):
    a, b = hashing.hash_params(np.random.default_rng(seed))
    per_row = dim * bytes_per_value
    if budget < hashing.HEADER.size + per_row:
        with pytest.raises(BudgetError):
            HashingCodec.fit_budget(n_items, dim, budget, a, b, bytes_per_value)
        return
    codec = HashingCodec.fit_budget(n_items, dim, budget, a, b, bytes_per_value)
    assert isinstance(codec, ItemCodec)
    config = codec.full_config()
    assert codec.memory_bytes(config) <= budget
    assert codec.rows == n_items or codec.memory_bytes(config) + per_row > budget  # the most rows
    table = _table(codec.table_shape, seed)
    payload = codec.encode(table, config)
    assert len(payload) == codec.memory_bytes(config) == codec.min_bytes()
    received = codec.decode(payload)
    assert isinstance(received, ReceivedTable)
    rows = hashing.hash_rows(np.arange(n_items), a, b, codec.rows)
    expected = _stored(table, bytes_per_value)[torch.from_numpy(rows)]
    torch.testing.assert_close(received.table, expected, rtol=0, atol=0)
    torch.testing.assert_close(received.table, _stored(codec.item_table(table), bytes_per_value))
    users = _table((3, dim), seed + 1)
    torch.testing.assert_close(received.score(users), users @ expected.T)
    trainable = hashing.decode_params(payload)  # what a federated device trains
    torch.testing.assert_close(trainable.table, _stored(table, bytes_per_value), rtol=0, atol=0)
    np.testing.assert_array_equal(trainable.parts[0], rows)
    assert trainable.bytes_per_value == bytes_per_value


# ---------------------------------------------------------------------- quotient-remainder
def test_qr_composition_hand_checked():
    codec = QRCodec(n_items=5, m=2, dim=2)  # T_q: 3 rows (i // 2), T_r: 2 rows (i % 2)
    table = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [10.0, 100.0], [-1.0, 0.5]])
    assert codec.table_shape == (5, 2)
    payload = codec.encode(table, codec.full_config())
    assert len(payload) == 12 + 5 * 2 * 4 == codec.memory_bytes(codec.full_config())
    # item 3 = T_q[1] * T_r[1] = (3, 4) * (-1, 0.5); item 4 = T_q[2] * T_r[0] = (5, 6) * (10, 100)
    assert codec.decode(payload).table.tolist() == [
        [10, 200],
        [-1, 1],
        [30, 400],
        [-3, 2],
        [50, 600],
    ]


def test_qr_sizes_hand_checked():
    # 5 items, d = 1, float32: room for 5 rows -> m = 2 (3 + 2); for 6 rows -> m = 1 (5 + 1)
    assert QRCodec.fit_budget(5, 1, 12 + 4 * 5).m == 2
    assert QRCodec.fit_budget(5, 1, 12 + 4 * 6).m == 1
    with pytest.raises(BudgetError, match="32 bytes at least"):  # 5 rows at least (m = 2 or 3)
        QRCodec.fit_budget(5, 1, 12 + 4 * 5 - 1)


@settings(max_examples=60, deadline=None)
@given(**SIZES)
def test_qr_fits_the_budget_and_round_trips(n_items, dim, bytes_per_value, budget, seed):
    per_row = dim * bytes_per_value
    ms = np.arange(1, n_items + 1)
    least = int((-(-n_items // ms) + ms).min())
    if budget < qr.HEADER.size + least * per_row:
        with pytest.raises(BudgetError):
            QRCodec.fit_budget(n_items, dim, budget, bytes_per_value)
        return
    codec = QRCodec.fit_budget(n_items, dim, budget, bytes_per_value)
    assert isinstance(codec, ItemCodec)
    config = codec.full_config()
    assert codec.memory_bytes(config) <= budget
    if codec.m > 1:  # the smallest m that fits
        smaller = QRCodec(n_items, codec.m - 1, dim, bytes_per_value)
        assert smaller.memory_bytes(config) > budget
    table = _table(codec.table_shape, seed)
    payload = codec.encode(table, config)
    assert len(payload) == codec.memory_bytes(config)
    received = codec.decode(payload)
    items = torch.arange(n_items)
    stored = _stored(table, bytes_per_value)
    expected = stored[items // codec.m] * stored[codec.quotient_rows + items % codec.m]
    torch.testing.assert_close(received.table, expected, rtol=0, atol=0)
    users = _table((3, dim), seed + 1)
    torch.testing.assert_close(received.score(users), users @ expected.T)
    trainable = qr.decode_params(payload)  # what a federated device trains
    torch.testing.assert_close(trainable.table, stored, rtol=0, atol=0)
    torch.testing.assert_close(trainable.item_table(), expected, rtol=0, atol=0)


# ---------------------------------------------------------------------- popularity
def test_popularity_hand_checked():
    codec = PopularityCodec(4)
    payload = codec.encode(np.array([3, 9, 3, 0]), codec.full_config())
    assert len(payload) == 8 + 4 == codec.memory_bytes(codec.full_config())  # one byte per id
    scores = codec.decode(payload).score(torch.zeros(2, 7))
    assert scores.tolist() == [[3, 4, 2, 1]] * 2  # 1 first, then 0 and 2 (tie: by id), then 3


@settings(max_examples=40, deadline=None)
@given(n_items=st.integers(1, 70_000), seed=st.integers(0, 2**32 - 1))
def test_popularity_round_trips(n_items, seed):
    counts = np.random.default_rng(seed).integers(0, 5, size=n_items)
    codec = PopularityCodec(n_items)
    payload = codec.encode(counts, codec.full_config())
    assert len(payload) == codec.memory_bytes(codec.full_config())
    assert len(payload) == 8 + n_items * (1 if n_items <= 256 else 2 if n_items <= 65536 else 4)
    scores = codec.decode(payload).score(torch.zeros(1, 3))[0].numpy()
    order = np.lexsort((np.arange(n_items), -counts))
    assert np.array_equal(np.argsort(-scores, kind="stable"), order)


def test_codecs_reject_other_configurations():
    codec = HashingCodec(n_items=5, rows=4, dim=2, a=3, b=5)
    with pytest.raises(ValueError, match="one configuration"):
        codec.memory_bytes(np.ones((2, 1), dtype=bool))


# ---------------------------------------------------------------------- the uniform prefix
@settings(max_examples=40, deadline=None)
@given(
    n_items=st.integers(2, 60),
    blocks=st.sampled_from([1, 2, 4]),
    share=st.floats(0.05, 1.0),
    seed=st.integers(0, 1000),
)
def test_uniform_prefix_payload_scores_with_the_first_columns(n_items, blocks, share, seed):
    from fedrule.search.customize import uniform_fit

    popularity = np.random.default_rng(seed).integers(0, 20, size=n_items)
    layout = ElasticLayout(
        dim=blocks * 2, num_blocks=blocks, group_of_item=make_groups(popularity, 3)
    )
    budget = int(layout.full_table_bytes * share)
    if budget < layout.min_bytes():
        return
    config = uniform_fit(layout, budget)
    table = _table((n_items, layout.dim), seed)
    payload = layout.encode(table, config)
    assert len(payload) == layout.memory_bytes(config) <= budget
    kept = int(config[0].sum()) * layout.block_dim
    users = _table((2, layout.dim), seed + 1)
    expected = users[:, :kept] @ table[:, :kept].T
    torch.testing.assert_close(layout.decode(payload).score(users), expected)


# ---------------------------------------------------------------------- training
@pytest.mark.parametrize(
    "codec",
    [HashingCodec(n_items=9, rows=4, dim=3, a=7, b=2), QRCodec(n_items=9, m=2, dim=3)],
    ids=["hashing", "qr"],
)
def test_embedding_gradients_match_autograd(codec):
    table = _table(codec.table_shape, 0).requires_grad_()
    items = torch.tensor([0, 3, 8, 5, 1])
    weights = _table((5, 3), 1)
    (codec.embed(table, items) * weights).sum().backward()
    torch.testing.assert_close(codec.embed_grad(table.detach(), items, weights), table.grad)
    torch.testing.assert_close(codec.item_table(table.detach())[items], codec.embed(table, items))


@dataclasses.dataclass(frozen=True)
class _OneRowPerItem:
    """A codec whose table is the plain item table: its training must be plain BPR-MF's."""

    n_items: int
    dim: int

    @property
    def table_shape(self):
        return (self.n_items, self.dim)

    def init_table(self, init_std, generator):
        return torch.randn(self.table_shape, generator=generator) * init_std

    def embed(self, table, items):
        return table[items]

    def embed_grad(self, table, items, grad):
        return torch.zeros_like(table).index_add_(0, items, grad)

    def item_table(self, table):
        return table


@pytest.fixture(scope="module")
def tiny_split_and_scenario():
    from fedrule.engine.prepare import prepare_split
    from fedrule.scenario import scenario_from_dict

    scenario = scenario_from_dict(
        {
            "data": {
                "source": "synthetic",
                "synthetic": {"users": 120, "items": 60, "interactions_per_user": 12},
            },
            "model": {"dim": 8, "blocks": 1, "groups": 0},
            "train": {
                "epochs": 4,
                "batch_size": 128,
                "lr": 0.02,
                "eval_every": 1,
                "negatives": 2,
                "sampling": "none",
                "lambda_div": 0.0,
                "l2": 1e-4,
            },
            "eval": {"ks": [5, 10], "metric": "ndcg@10"},
        }
    )
    return prepare_split(scenario.data, 0), scenario


def test_trainer_is_plain_bpr_mf_for_one_row_per_item(tiny_split_and_scenario):
    from fedrule.model.mf import ElasticMF
    from fedrule.model.train import train_centralized

    split, scenario = tiny_split_and_scenario
    m = scenario.model
    layout = ElasticLayout(m.dim, 1, np.arange(split.n_items))
    model = ElasticMF(split.n_users, split.n_items, m.dim, 1, m.init_std, seed=3)
    plain = train_centralized(split, layout, model, scenario.train, scenario.eval, seed=3)
    codec = _OneRowPerItem(split.n_items, m.dim)
    ours = train_codec(split, codec, m.dim, m.init_std, scenario.train, scenario.eval, seed=3)
    assert [r["loss"] for r in ours.history] == pytest.approx(
        [r["loss"] for r in plain.history], rel=1e-4
    )
    assert ours.best_epoch == plain.best_epoch
    torch.testing.assert_close(ours.table, model.item.detach(), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(ours.user, model.user.detach(), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["hashing", "qr"])
def test_compressed_training_lowers_the_loss(tiny_split_and_scenario, kind):
    split, scenario = tiny_split_and_scenario
    n, dim = split.n_items, scenario.model.dim
    budget = 12 + 4 * dim * n // 3  # a third of the plain table's rows
    codec = (
        HashingCodec.fit_budget(n, dim, budget, a=12345, b=678)
        if kind == "hashing"
        else QRCodec.fit_budget(n, dim, budget)
    )
    result = train_codec(
        split, codec, dim, scenario.model.init_std, scenario.train, scenario.eval, seed=0
    )
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert result.table.shape == codec.table_shape and result.best_epoch >= 1


def test_unknown_baseline_is_a_config_error():
    from fedrule.scenario import scenario_from_dict

    with pytest.raises(ConfigError, match="references.baselines"):
        scenario_from_dict({"references": {"baselines": ["hashing", "bloom"]}})


# ---------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_centralised_table_has_the_baselines(tmp_path, tiny_scenario):
    import csv

    from fedrule.report.run import run_scenario
    from fedrule.scenario import scenario_from_dict

    raw = {
        **tiny_scenario,
        "model": {"dim": 16, "blocks": 8, "groups": 4},
        "estimator": {"configs": 16, "epochs": 10},
        "search": {"budgets": ["1/4", "1/2"], "cycles": 5},
        "references": {"baselines": ["full", "hashing", "qr", "popularity"]},
    }
    run = run_scenario(scenario_from_dict(raw), tmp_path)
    with open(run / "rule.csv") as fh:
        rows = list(csv.DictReader(fh))
    found = {(r["method"], r["budget"]): r for r in rows}
    for budget in ("1/4", "1/2"):
        for method in ("rule", "full-prefix", "hashing", "qr", "popularity"):
            row = found[(method, budget)]
            assert int(float(row["bytes"])) <= int(float(row["budget_bytes"]))
            for key in ("recall@10", "ndcg@10", "tail/recall@10", "tail/ndcg@10"):
                assert 0 <= float(row[key]) <= 1
        assert float(found[("hashing", budget)]["train_seconds"]) > 0
    assert found[("popularity", "1/4")]["ndcg@10"] == found[("popularity", "1/2")]["ndcg@10"]
    assert float(found[("hashing", "1/2")]["rows"]) > float(found[("hashing", "1/4")]["rows"])
    assert float(found[("full-prefix", "1/2")]["dim"]) > float(found[("full-prefix", "1/4")]["dim"])
    assert not any(r["method"] == "plain+search" for r in rows)  # references.plain stays off
