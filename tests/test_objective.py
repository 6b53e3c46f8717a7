"""The one training objective: hand-checked values, gradients against autograd, and the same
gradients from the centralised and the device trainer on the same batch."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fedrule.device.cohort import Rows
from fedrule.device.local_plan import device_schedule
from fedrule.device.local_spec import LocalSpec
from fedrule.device.local_train import local_train
from fedrule.fleet import device_rng
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.model.mf import ElasticMF, diversity_per_item
from fedrule.model.objective import (
    ConfigWeights,
    Objective,
    diversity_with_grad,
    objective_step,
)
from fedrule.model.supernet import build_subconfigs
from fedrule.model.train import batch_gradients


def _reference_loss(users, items, u, i, j, configs, group, num_blocks, l2, lambda_div, weight):
    """The objective written plainly (differentiated by autograd): BPR per configuration
    (full + ``configs``, S x G x B weights), L2 on the batch, mean block diversity."""
    uv, pv, nv = users[u], items[i], items[j]
    shape_p = (*pv.shape[:-1], num_blocks, -1)
    shape_n = (*nv.shape[:-1], num_blocks, -1)
    pos_blocks = (uv.reshape(shape_p) * pv.reshape(shape_p)).sum(-1)
    neg_blocks = (uv[:, None, :].expand_as(nv).reshape(shape_n) * nv.reshape(shape_n)).sum(-1)
    per_pair = 0
    for w in [torch.ones(1, num_blocks), *configs]:
        wp = w[group[i]] if w.shape[0] > 1 else w
        wn = w[group[j]] if w.shape[0] > 1 else w
        pos, neg = (pos_blocks * wp).sum(-1), (neg_blocks * wn).sum(-1)
        per_pair = per_pair - F.logsigmoid(pos[:, None] - neg).mean(-1)
    loss = (weight * per_pair).sum()
    norms = uv.pow(2).sum(-1) + pv.pow(2).sum(-1) + nv.pow(2).sum((-1, -2))
    loss = loss + l2 * (weight * norms).sum()
    spread = diversity_per_item(pv, num_blocks) + diversity_per_item(nv, num_blocks).sum(-1)
    return loss + lambda_div * (weight * spread / (1 + j.shape[1])).sum()


def _batch(seed=0, n_users=5, n_items=9, dim=8, pairs=7, negatives=3):
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_users, dim, generator=gen)
    items = torch.randn(n_items, dim, generator=gen)
    u = torch.randint(0, n_users, (pairs,), generator=gen)
    i = torch.randint(0, n_items, (pairs,), generator=gen)
    j = torch.randint(0, n_items, (pairs, negatives), generator=gen)
    return users, items, u, i, j


def test_one_pair_by_hand():
    users = torch.tensor([[1.0, 2.0]])
    items = torch.tensor([[0.5, 0.0], [0.0, 1.0]])
    objective = Objective(num_blocks=1)
    res = objective_step(
        objective, users, items, torch.tensor([0]), torch.tensor([0]), torch.tensor([[1]])
    )
    diff = 0.5 - 2.0  # s(u, i) - s(u, j)
    assert res.loss.item() == pytest.approx(math.log1p(math.exp(-diff)))
    z = 1 / (1 + math.exp(diff))  # sigmoid(-diff)
    assert torch.allclose(res.grad_users, torch.tensor([[-z * (0.5 - 0.0), -z * (0.0 - 1.0)]]))
    assert torch.allclose(res.grad_items, torch.tensor([[-z * 1.0, -z * 2.0], [z * 1.0, z * 2.0]]))


def test_sub_configuration_scores_only_kept_blocks():
    # B = 2: the sub-configuration keeps block 0 only, so block 1 gets the full config's gradient
    users = torch.tensor([[1.0, 1.0]])
    items = torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    weights = torch.tensor([[[1.0, 0.0]]])  # 1 key x 1 configuration x 2 blocks
    configs = ConfigWeights(weights, torch.tensor([0]), torch.tensor([[0]]))
    res = objective_step(
        Objective(num_blocks=2),
        users,
        items,
        torch.tensor([0]),
        torch.tensor([0]),
        torch.tensor([[1]]),
        configs=configs,
    )
    full, sub = 4.0 - 2.0, 1.0 - 2.0
    expected = math.log1p(math.exp(-full)) + math.log1p(math.exp(-sub))
    assert res.loss.item() == pytest.approx(expected, rel=1e-6)
    z_full, z_sub = 1 / (1 + math.exp(full)), 1 / (1 + math.exp(sub))
    grad_pos = torch.tensor([-(z_full + z_sub), -z_full])
    assert torch.allclose(res.grad_items[0], grad_pos)


def test_diversity_by_hand():
    orthogonal = torch.tensor([[1.0, 0.0, 0.0, 2.0]])
    same = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    one = torch.ones(1)
    assert diversity_with_grad(orthogonal, 2, one)[0].item() == pytest.approx(0.0)
    value, grad = diversity_with_grad(same, 2, one)
    assert value.item() == pytest.approx(1.0)
    assert torch.allclose(grad, torch.zeros(1, 4), atol=1e-6)  # a maximum: flat


@pytest.mark.parametrize("num_blocks", [1, 2, 4, 8])
def test_diversity_gradient_matches_autograd(num_blocks):
    gen = torch.Generator().manual_seed(num_blocks)
    x = torch.randn(6, 8, generator=gen)
    x[0, :2] = 0.0  # a zero block (below the normalisation's eps)
    weight = torch.rand(6, generator=gen)
    value, grad = diversity_with_grad(x, num_blocks, weight)
    leaf = x.clone().requires_grad_(True)
    reference = (weight * diversity_per_item(leaf, num_blocks)).sum()
    expected = torch.zeros_like(x)
    if num_blocks > 1:
        (expected,) = torch.autograd.grad(reference, leaf)
    assert value.item() == pytest.approx(reference.item(), abs=1e-6)
    assert torch.allclose(grad, expected, atol=1e-5)


@pytest.mark.parametrize("sub_configs", [0, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradients_match_autograd(sub_configs, weighted):
    users, items, u, i, j = _batch()
    num_blocks, l2, lambda_div, groups = 4, 0.01, 0.3, 3
    gen = torch.Generator().manual_seed(3)
    group = torch.randint(0, groups, (items.shape[0],), generator=gen)
    configs = (torch.rand(sub_configs, groups, num_blocks, generator=gen) > 0.5).float() * 1.5
    weight = torch.rand(u.numel(), generator=gen) if weighted else torch.full((u.numel(),), 1 / 7)
    cw = None
    if sub_configs:
        cw = ConfigWeights(configs.transpose(0, 1).contiguous(), group[i], group[j])
    res = objective_step(
        Objective(num_blocks, l2, lambda_div),
        users,
        items,
        u,
        i,
        j,
        pair_weight=weight if weighted else None,
        configs=cw,
    )
    leaves = users.clone().requires_grad_(True), items.clone().requires_grad_(True)
    loss = _reference_loss(*leaves, u, i, j, configs, group, num_blocks, l2, lambda_div, weight)
    grad_users, grad_items = torch.autograd.grad(loss, leaves)
    assert res.loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert torch.allclose(res.grad_users, grad_users, atol=1e-5)
    assert torch.allclose(res.grad_items, grad_items, atol=1e-5)


@pytest.mark.parametrize("sampling", ["none", "sandwich", "popular", "random"])
def test_centralised_and_device_trainers_have_the_same_gradients(sampling):
    """One device, one SGD step of lr 1 over its whole data: its update is minus the gradient;
    the centralised trainer's gradient on the same batch (same pairs, negatives and
    sub-configurations) is the same."""
    n_items, dim, blocks = 20, 8, 4
    items = np.array([3, 7, 1, 12, 5, 18])
    layout = ElasticLayout(dim, blocks, make_groups(np.arange(n_items)[::-1], 3), min_blocks=1)
    spec = LocalSpec(
        epochs=1,
        batch_size=16,
        lr=1.0,
        negatives=2,
        l2=0.01,
        lambda_div=0.2,
        sampling=sampling,
        optimizer="sgd",
    )
    model = ElasticMF(1, n_items, dim, blocks, 0.3, seed=4)
    table, user = model.item.detach().clone(), model.user.detach().clone()
    rows = Rows(np.array([0, items.size], dtype=np.int64), items)
    result = local_train(table, user, rows, None, layout, spec, [device_rng(0, 9, 1)])
    pos, neg, drawn = device_schedule(device_rng(0, 9, 1), items, n_items, spec, layout)
    configs = build_subconfigs([drawn], layout)
    objective = Objective(blocks, spec.l2, spec.lambda_div)
    u = torch.zeros(items.size, dtype=torch.int64)
    res = batch_gradients(
        model, layout, objective, u, torch.from_numpy(pos), torch.from_numpy(neg), configs[0]
    )
    d = result.deltas
    assert torch.allclose(-(result.user_vecs - user), res.grad_users, atol=1e-6)
    grad_items = np.zeros((n_items, dim), np.float32)
    np.add.at(grad_items, d.row_item, -d.delta)
    assert np.allclose(grad_items, res.grad_items.numpy(), atol=1e-6)
    assert set(d.row_item) == set(pos) | set(neg.ravel())


@pytest.mark.slow
@pytest.mark.parametrize("sub_configs", [0, 2])
def test_compiled_kernels_give_the_eager_objective(sub_configs):
    """``train.compile``: the torch.compile'd kernels compute the same loss and gradients as
    eager PyTorch (to float rounding), for batches of two sizes (dynamic shapes)."""
    num_blocks, groups = 4, 3
    for seed, pairs in ((0, 7), (1, 11)):
        users, items, u, i, j = _batch(seed=seed, pairs=pairs)
        gen = torch.Generator().manual_seed(3)
        group = torch.randint(0, groups, (items.shape[0],), generator=gen)
        configs = (torch.rand(sub_configs, groups, num_blocks, generator=gen) > 0.5).float()
        cw = None
        if sub_configs:
            cw = ConfigWeights(configs.transpose(0, 1).contiguous(), group[i], group[j])
        eager, compiled = (
            objective_step(
                Objective(num_blocks, 0.01, 0.3, compiled=flag), users, items, u, i, j, configs=cw
            )
            for flag in (False, True)
        )
        assert compiled.loss.item() == pytest.approx(eager.loss.item(), rel=1e-5)
        assert torch.allclose(compiled.grad_users, eager.grad_users, atol=1e-5)
        assert torch.allclose(compiled.grad_items, eager.grad_items, atol=1e-5)
