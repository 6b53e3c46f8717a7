"""Devices training compressed tables (hashing, QR) update the parameter rows their items share,
exactly as the centralised codec trainer's gradient says, and batching devices changes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fedrule.device.cohort import Rows
from fedrule.device.composed_train import local_train_composed
from fedrule.device.local_plan import device_schedule
from fedrule.device.local_spec import LocalSpec
from fedrule.model.codec import decode_trainable
from fedrule.model.codecs.composed import plain_layout
from fedrule.model.codecs.dense import SINGLE_CONFIG
from fedrule.model.codecs.hashing import HashingCodec
from fedrule.model.codecs.qr import QRCodec
from fedrule.model.codecs.train import _step
from fedrule.model.objective import Objective

N_ITEMS, DIM = 12, 4
CODECS = {
    "hashing": HashingCodec(N_ITEMS, rows=4, dim=DIM, a=7, b=3),  # 12 items on 4 rows: shared
    "qr": QRCodec(N_ITEMS, m=4, dim=DIM),
}


def _spec(**kw) -> LocalSpec:
    base = dict(epochs=1, batch_size=8, lr=0.1, negatives=2, l2=0.01, lambda_div=0.0)
    return LocalSpec(**{**base, "sampling": "none", "optimizer": "sgd", **kw})


def _received(kind: str, seed: int = 0):
    codec = CODECS[kind]
    table = torch.randn(codec.table_shape, generator=torch.Generator().manual_seed(seed))
    return codec, table, decode_trainable(kind, codec.encode(table, SINGLE_CONFIG))


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_one_sgd_step_follows_the_centralised_codec_gradient(kind):
    """One device, one step over all its items: its update of every parameter row (and of its
    user vector) is -lr times the centralised trainer's gradient on the same pairs."""
    codec, table, received = _received(kind)
    items = np.array([0, 4, 5, 9, 11])  # 0, 4 (and 5, 9) hash or divide onto shared rows
    spec = _spec()
    rng = np.random.default_rng(3)
    pos, neg, _ = device_schedule(
        copy.deepcopy(rng), items, N_ITEMS, spec, plain_layout(N_ITEMS, DIM)
    )
    user = torch.randn(1, DIM, generator=torch.Generator().manual_seed(1))
    result = local_train_composed(
        received, user, Rows(np.array([0, items.size]), items), spec, [rng]
    )
    user_param, table_param = torch.nn.Parameter(user.clone()), torch.nn.Parameter(table.clone())
    zeros = torch.zeros(pos.size, dtype=torch.int64)
    pairs = torch.from_numpy(pos), torch.from_numpy(neg)
    _step(codec, Objective(1, spec.l2), user_param, table_param, zeros, *pairs)
    expected = -spec.lr * table_param.grad
    deltas = result.deltas
    assert np.unique(deltas.row_item).size == deltas.row_item.size  # one copy per row
    np.testing.assert_allclose(deltas.delta, expected[deltas.row_item].numpy(), atol=1e-6)
    untouched = np.setdiff1d(np.arange(table.shape[0]), deltas.row_item)
    assert torch.count_nonzero(expected[untouched]) == 0
    np.testing.assert_allclose(result.user_vecs - user, -spec.lr * user_param.grad, atol=1e-6)
    assert deltas.kept.shape == (deltas.row_item.size, 1)


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_devices_batched_in_a_cohort_train_as_if_alone(kind):
    """Three devices with lazy Adam over several steps: their updates in one cohort equal each
    device's alone, row for row (private copies: the shared rows never mix between devices)."""
    _, _, received = _received(kind, seed=2)
    data = [np.array([0, 1, 2, 3, 4, 5, 6]), np.array([4, 8]), np.array([1, 5, 9, 10, 11])]
    indptr = np.concatenate([[0], np.cumsum([d.size for d in data])])
    spec = _spec(optimizer="adam", batch_size=2, epochs=2, lr=0.05)
    users = torch.randn(3, DIM, generator=torch.Generator().manual_seed(5))
    rngs = [np.random.default_rng(10 + k) for k in range(3)]
    together = local_train_composed(
        received, users, Rows(indptr, np.concatenate(data)), spec, copy.deepcopy(rngs)
    )
    for k, items in enumerate(data):
        alone = local_train_composed(
            received, users[k : k + 1], Rows(np.array([0, items.size]), items), spec, [rngs[k]]
        )
        mine = together.deltas.row_device == k
        np.testing.assert_array_equal(together.deltas.row_item[mine], alone.deltas.row_item)
        np.testing.assert_allclose(together.deltas.delta[mine], alone.deltas.delta, atol=1e-6)
        np.testing.assert_allclose(together.user_vecs[k], alone.user_vecs[0], atol=1e-6)


def test_sub_configurations_are_refused():
    _, _, received = _received("hashing")
    with pytest.raises(ValueError, match="plain BPR"):
        local_train_composed(
            received,
            torch.zeros(1, DIM),
            Rows(np.array([0, 1]), np.array([0])),
            _spec(sampling="sandwich"),
            [np.random.default_rng(0)],
        )
