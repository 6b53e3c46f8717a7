"""The training objective of both trainers, with its gradients written out (no autograd).

One step of the centralised trainer (``fedrule.model.train``) and one step of every device of a
cohort (``fedrule.device.local_train``) call ``objective_step``. The objective of a batch of
(user, positive, ``K`` negatives) pairs, each pair ``p`` with a weight ``a_p`` (default ``1/P``:
the mean over the batch; a device's pairs weigh ``1/its batch size``), is

    sum_p a_p * sum_c mean_k -log sigmoid(s_c(u_p, i_p) - s_c(u_p, j_pk))        (BPR)
  + l2 * sum_p a_p * (|u_p|^2 + |i_p|^2 + sum_k |j_pk|^2)                         (L2)
  + lambda_div * sum_p a_p * (D(i_p) + sum_k D(j_pk)) / (1 + K)                    (diversity)

where ``c`` runs over the configurations trained in the step: the full one (all blocks, weight 1)
and the sampled sub-configurations, each a G x B table of block weights (1 kept / 0 dropped, or
``B / |kept|`` with rescaling); ``s_c(u, i) = sum_b w_c[group(i), b] * <u_b, i_b>`` with ``u_b``,
``i_b`` the b-th column blocks. ``D`` is the mean squared cosine similarity between pairs of
distinct blocks of an item (``fedrule.model.mf.diversity_per_item``).

Gradients are exact and cheap: BPR's is ``sigmoid(-(s - t))`` times the other vector, block by
block times the block weights; L2 and diversity depend on an item row only, so they are computed
once per distinct row of the step, weighted by how often (and with which pair weights) the row
occurs. Per-pair computations never mix pairs, so a batch of many devices computes exactly what
each device computes alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

NORM_EPS = 1e-8  # as F.normalize: blocks are divided by max(|block|, eps)


@dataclass(frozen=True)
class Objective:
    """The weights of the objective's terms (``num_blocks`` B cuts the item vectors)."""

    num_blocks: int
    l2: float = 0.0
    lambda_div: float = 0.0
    compiled: bool = False  # run the per-pair and per-row kernels through ``torch.compile``


@dataclass(frozen=True)
class ConfigWeights:
    """Block weights of the configurations a step trains, looked up per item occurrence.

    ``weights`` (W x C x B): C configurations' block weights for each of W keys (the centralised
    trainer: one key per item group; a device: one per (step slot, group)); ``pos_key`` (P) and
    ``neg_key`` (P x K) say which key each positive and negative reads. ``full``: the full
    configuration is trained as well (computed without weights).
    """

    weights: torch.Tensor
    pos_key: torch.Tensor
    neg_key: torch.Tensor
    full: bool = True


@dataclass(frozen=True)
class KnownDiversity:
    """Diversity already known for some of a step's item rows (rows nobody changed yet: a
    device's copy of a received row before its first step on it): ``rows`` (positions in the
    step's ``items``), their ``value`` D and unweighted gradient ``grad``; ``rest``: the other
    positions, computed in the step."""

    rows: torch.Tensor
    value: torch.Tensor
    grad: torch.Tensor
    rest: torch.Tensor


@dataclass
class StepResult:
    """The step's objective (``loss``: all terms; ``bpr``: the BPR term) and its gradients with
    respect to the user and item rows the step was given."""

    loss: torch.Tensor
    bpr: torch.Tensor
    grad_users: torch.Tensor
    grad_items: torch.Tensor


def objective_step(
    objective: Objective,
    users: torch.Tensor,
    items: torch.Tensor,
    pair_user: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    pair_weight: torch.Tensor | None = None,
    configs: ConfigWeights | None = None,
    known: KnownDiversity | None = None,
) -> StepResult:
    """Objective and gradients of one step.

    ``users`` (U x d) and ``items`` (R x d) are the rows the step may touch; pair p is user row
    ``pair_user[p]``, positive item row ``pos[p]`` and negative item rows ``neg[p]`` (P x K).
    ``configs`` None trains the full configuration only (plain BPR-MF). ``known``: diversity
    terms of some rows, looked up instead of computed.
    """
    num_pairs, k = neg.shape
    if pair_weight is None:
        pair_weight = torch.full((num_pairs,), 1.0 / max(num_pairs, 1))
    touched = torch.cat([pos[:, None], neg], 1)  # P x (1 + K): the positive, then negatives
    u = F.embedding(pair_user, users)  # (F.embedding: the fastest row gather on CPU)
    x = F.embedding(touched, items)
    if configs is None:
        kernel = _compiled("bpr_plain") if objective.compiled else _bpr_plain
        bpr, grad_x, gu = kernel(u, x, pair_weight)
    else:
        keys = torch.cat([configs.pos_key[:, None], configs.neg_key], 1)
        kernel = _compiled("bpr_configs") if objective.compiled else _bpr_configs
        bpr, grad_x, gu = kernel(u, x, pair_weight, configs, keys, objective.num_blocks)
    grad_users = torch.zeros_like(users).index_add_(0, pair_user, gu)
    grad_items = torch.zeros_like(items).index_add_(
        0, touched.reshape(-1), grad_x.reshape(-1, items.shape[1])
    )
    loss = bpr
    if objective.l2 or objective.lambda_div:
        per_row = pair_weight[:, None].expand(num_pairs, k + 1).reshape(-1)
        occurs = torch.zeros(items.shape[0]).index_add_(0, touched.reshape(-1), per_row)
    if objective.l2:
        user_occurs = torch.zeros(users.shape[0]).index_add_(0, pair_user, pair_weight)
        loss = loss + _l2(users, user_occurs, objective.l2, grad_users)
        loss = loss + _l2(items, occurs, objective.l2, grad_items)
    if objective.lambda_div:
        weight = occurs * (objective.lambda_div / (1 + k))
        rows = _compiled("diversity_rows") if objective.compiled else diversity_rows
        if known is None:
            per_item, grad = rows(items, objective.num_blocks, weight)
            value = (weight * per_item).sum()
            grad_items += grad
        else:
            value = _add_known_diversity(items, weight, known, grad_items, objective, rows)
        loss = loss + value
    return StepResult(loss, bpr, grad_users, grad_items)


def _add_known_diversity(
    items: torch.Tensor,
    weight: torch.Tensor,
    known: KnownDiversity,
    grad_items: torch.Tensor,
    objective: Objective,
    rows: Callable[..., tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """Weighted diversity of ``items`` from the known rows and the rest; adds the gradient."""
    known_weight = weight.index_select(0, known.rows)
    grad_items.index_add_(0, known.rows, known.grad * known_weight[:, None])
    rest_weight = weight.index_select(0, known.rest)
    per_item, grad = rows(items.index_select(0, known.rest), objective.num_blocks, rest_weight)
    grad_items.index_add_(0, known.rest, grad)
    return (rest_weight * per_item).sum() + (known_weight * known.value).sum()


@functools.cache
def _compiled(name: str) -> Callable[..., Any]:
    """A kernel of this module compiled by ``torch.compile`` (once per process; shapes vary
    from step to step, so dynamic). Fused kernels round differently from eager PyTorch: a
    compiled run is reproducible from its seed but not bit-identical to an eager one."""
    kernels = {
        "bpr_plain": _bpr_plain,
        "bpr_configs": _bpr_configs,
        "diversity_rows": diversity_rows,
    }
    return torch.compile(kernels[name], dynamic=None)


def _l2(rows: torch.Tensor, occurs: torch.Tensor, l2: float, grad: torch.Tensor) -> torch.Tensor:
    """``l2 * sum_r occurs_r |row_r|^2``; adds its gradient to ``grad``."""
    grad.addcmul_(occurs[:, None], rows, value=2 * l2)
    return l2 * (occurs * rows.pow(2).sum(-1)).sum()


def _bpr_full(
    u: torch.Tensor, x: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted BPR under the full configuration (whole dot products) of users ``u`` (P x d)
    with items ``x`` (P x (1 + K) x d, the positive first), and its derivative with respect to
    the scores (P x (1 + K))."""
    scores = (x * u[:, None, :]).sum(-1)
    loss, z = _bpr_terms(scores[:, :1] - scores[:, 1:], a)
    return loss, torch.cat([-z.sum(1, keepdim=True), z], 1)


def _bpr_plain(
    u: torch.Tensor, x: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted BPR of the full configuration and its gradients with respect to ``x``, ``u``."""
    bpr, coef = _bpr_full(u, x, a)
    return bpr, coef[..., None] * u[:, None, :], _weighted_sum(coef, x)


def _bpr_configs(
    u: torch.Tensor,
    x: torch.Tensor,
    a: torch.Tensor,
    configs: ConfigWeights,
    keys: torch.Tensor,
    num_blocks: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted BPR summed over configurations, from per-block partial scores: the loss and
    its gradients with respect to the items ``x`` (P x (1 + K) x d) and the users ``u``."""
    num_pairs, m, dim = x.shape
    ub = u.view(num_pairs, 1, num_blocks, dim // num_blocks)
    xb = x.view(num_pairs, m, num_blocks, -1)
    blocks = _block_sums(ub * xb)  # P x (1 + K) x B
    lookup = _WeightLookup(configs.weights, keys.reshape(-1))
    scores = lookup.scores(blocks.view(-1, num_blocks)).view(num_pairs, m, -1)
    if configs.full:
        scores = torch.cat([blocks.sum(-1, keepdim=True), scores], -1)
    loss, z = _bpr_terms(scores[:, :1] - scores[:, 1:], a)  # z: P x K x C'
    coef = torch.cat([-z.sum(1, keepdim=True), z], 1).view(num_pairs * m, -1)
    first = 1 if configs.full else 0
    grad_blocks = lookup.backward(coef[:, first:])
    if configs.full:
        grad_blocks += coef[:, :1]
    grad_blocks = grad_blocks.view(num_pairs, m, num_blocks, 1)
    grad_x = (grad_blocks * ub).view(num_pairs, m, dim)
    gu = _weighted_sum(grad_blocks, xb).view(num_pairs, dim)
    return loss, grad_x, gu


class _WeightLookup:
    """Per item occurrence n, the C scores ``sum_b weights[key_n, c, b] * blocks[n, b]`` and,
    backwards, ``sum_c coef[n, c] * weights[key_n, c, :]``, from the occurrences' gathered
    weights. (One matrix product with every key's weights, then a gather, was slower on CPU even
    for the centralised trainer's 16 groups.)"""

    def __init__(self, weights: torch.Tensor, keys: torch.Tensor) -> None:
        num_keys, self.num_configs, num_blocks = weights.shape
        rows = F.embedding(keys, weights.view(num_keys, -1))
        self.rows = rows.view(keys.numel(), self.num_configs, num_blocks)

    def scores(self, blocks: torch.Tensor) -> torch.Tensor:
        return (self.rows * blocks[:, None, :]).sum(-1)

    def backward(self, coef: torch.Tensor) -> torch.Tensor:
        out = coef[:, :1] * self.rows[:, 0]
        for c in range(1, self.num_configs):
            out.addcmul_(coef[:, c : c + 1], self.rows[:, c])
        return out


def _weighted_sum(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(coef[..., None] * x).sum(1)`` for P x m [x ...] coefficients and P x m x ... values,
    one multiply-add per item of the pair (no P x m x ... temporary, no tiny matrix products)."""
    extra = x.dim() - coef.dim()
    c = coef.reshape(*coef.shape, *([1] * extra))
    out = c[:, 0] * x[:, 0]
    for k in range(1, x.shape[1]):
        out.addcmul_(c[:, k], x[:, k])
    return out


def _block_sums(products: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis (the block width w); slices add faster than a narrow reduction."""
    width = products.shape[-1]
    if width > 8:
        return products.sum(-1)
    total = products[..., 0].clone()
    for c in range(1, width):
        total += products[..., c]
    return total


def _bpr_terms(diff: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For score differences ``s - t`` (P x K [x C]): the weighted loss
    ``sum_p a_p sum_c mean_k -log sigmoid(diff)`` and its derivative with respect to ``t``."""
    k = diff.shape[1]
    shape = (-1,) + (1,) * (diff.dim() - 1)
    loss = -(F.logsigmoid(diff).sum(tuple(range(1, diff.dim()))) * a).sum() / k
    return loss, torch.sigmoid(-diff) * (a / k).view(shape)


def diversity_with_grad(
    items: torch.Tensor, num_blocks: int, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_r weight_r * D(items_r)`` and its gradient (R x d), D as ``diversity_per_item``.

    With unit blocks ``n_b`` and ``M = sum_b n_b n_b^T`` (w x w), ``D = (|M|_F^2 - sum_b
    |n_b|^4) / (B (B - 1))`` and ``dD/dn_b = 4 (M n_b - |n_b|^2 n_b) / (B (B - 1))``, taken back
    through ``n_b = x_b / max(|x_b|, eps)``.
    """
    per_item, grad = diversity_rows(items, num_blocks, weight)
    return (weight * per_item).sum(), grad


def diversity_rows(
    items: torch.Tensor, num_blocks: int, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: ``D`` (R) and the gradient of ``weight_r * D`` (R x d)."""
    rows, dim = items.shape
    if num_blocks < 2 or rows == 0:
        return items.new_zeros(rows), torch.zeros_like(items)
    x = items.view(rows, num_blocks, dim // num_blocks)
    sq = _block_sums(x * x)  # R x B
    norm = sq.sqrt()
    scale = norm.clamp_min(NORM_EPS)
    n = x / scale[..., None]
    n_sq = sq / scale.pow(2)
    moment = _gram(n)  # R x w x w
    c = 1.0 / (num_blocks * (num_blocks - 1))
    per_item = (moment.pow(2).sum((1, 2)) - n_sq.pow(2).sum(-1)) * c
    h = _times_small(n, moment)  # (M n_b)^T, M symmetric
    h.addcmul_(n_sq[..., None], n, value=-1.0)
    along = _block_sums(h * n) * (norm > NORM_EPS)  # the part the normalisation removes
    h.addcmul_(along[..., None], n, value=-1.0)
    h *= (4 * c * weight[:, None] / scale)[..., None]
    return per_item, h.view(rows, dim)


def _gram(n: torch.Tensor) -> torch.Tensor:
    """``n^T n`` (R x w x w) for R x B x w; for a narrow w, entry by entry."""
    width = n.shape[-1]
    if width > 4:
        return torch.bmm(n.transpose(1, 2), n)
    out = n.new_empty(n.shape[0], width, width)
    for a in range(width):
        for b in range(a, width):
            out[:, a, b] = (n[..., a] * n[..., b]).sum(-1)
            out[:, b, a] = out[:, a, b]
    return out


def _times_small(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for R x B x w and R x w x w; for a narrow w, as w broadcast products (batched
    tiny matrix products are slow on CPU)."""
    width = b.shape[-1]
    if width > 8:
        return torch.bmm(a, b)
    out = a[..., :1] * b[:, None, 0, :]
    for v in range(1, width):
        out.addcmul_(a[..., v : v + 1], b[:, None, v, :])
    return out
