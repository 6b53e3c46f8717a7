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

from dataclasses import dataclass

import torch
from torch.nn import functional as F

NORM_EPS = 1e-8  # as F.normalize: blocks are divided by max(|block|, eps)


@dataclass(frozen=True)
class Objective:
    """The weights of the objective's terms (``num_blocks`` B cuts the item vectors)."""

    num_blocks: int
    l2: float = 0.0
    lambda_div: float = 0.0


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
) -> StepResult:
    """Objective and gradients of one step.

    ``users`` (U x d) and ``items`` (R x d) are the rows the step may touch; pair p is user row
    ``pair_user[p]``, positive item row ``pos[p]`` and negative item rows ``neg[p]`` (P x K).
    ``configs`` None trains the full configuration only (plain BPR-MF).
    """
    num_pairs, k = neg.shape
    if pair_weight is None:
        pair_weight = torch.full((num_pairs,), 1.0 / max(num_pairs, 1))
    u, p, q = users[pair_user], items[pos], items[neg]
    if configs is None:
        bpr, gu, gp, gq = _bpr_full(u, p, q, pair_weight)
    else:
        bpr, gu, gp, gq = _bpr_configs(u, p, q, pair_weight, configs, objective.num_blocks)
    grad_users = torch.zeros_like(users).index_add_(0, pair_user, gu)
    grad_items = torch.zeros_like(items).index_add_(0, pos, gp)
    grad_items.index_add_(0, neg.reshape(-1), gq.reshape(-1, items.shape[1]))
    loss = bpr
    if objective.l2 or objective.lambda_div:
        per_neg = pair_weight[:, None].expand(num_pairs, k).reshape(-1)
        occurs = torch.zeros(items.shape[0]).index_add_(0, pos, pair_weight)
        occurs.index_add_(0, neg.reshape(-1), per_neg)
    if objective.l2:
        user_occurs = torch.zeros(users.shape[0]).index_add_(0, pair_user, pair_weight)
        loss = loss + _l2(users, user_occurs, objective.l2, grad_users)
        loss = loss + _l2(items, occurs, objective.l2, grad_items)
    if objective.lambda_div:
        weight = occurs * (objective.lambda_div / (1 + k))
        value, grad = diversity_with_grad(items, objective.num_blocks, weight)
        loss = loss + value
        grad_items += grad
    return StepResult(loss, bpr, grad_users, grad_items)


def _l2(rows: torch.Tensor, occurs: torch.Tensor, l2: float, grad: torch.Tensor) -> torch.Tensor:
    """``l2 * sum_r occurs_r |row_r|^2``; adds its gradient to ``grad``."""
    grad.addcmul_(occurs[:, None], rows, value=2 * l2)
    return l2 * (occurs * rows.pow(2).sum(-1)).sum()


def _bpr_full(
    u: torch.Tensor, p: torch.Tensor, q: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted BPR under the full configuration (whole dot products) and its gradients with
    respect to the pairs' user, positive and negative vectors."""
    pos_scores = (u * p).sum(-1)
    neg_scores = torch.bmm(q, u[:, :, None]).squeeze(-1)
    loss, z = _bpr_terms(pos_scores[:, None] - neg_scores, a)
    cp = -z.sum(-1)
    gp = cp[:, None] * u
    gq = z[:, :, None] * u[:, None, :]
    gu = torch.baddbmm(cp[:, None, None] * p[:, None, :], z[:, None, :], q).squeeze(1)
    return loss, gu, gp, gq


def _bpr_configs(
    u: torch.Tensor,
    p: torch.Tensor,
    q: torch.Tensor,
    a: torch.Tensor,
    configs: ConfigWeights,
    num_blocks: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted BPR summed over configurations, from per-block partial scores."""
    num_pairs, k, dim = q.shape
    ub = u.view(num_pairs, 1, num_blocks, dim // num_blocks)
    pb = p.view(num_pairs, num_blocks, -1)
    qb = q.view(num_pairs, k, num_blocks, -1)
    pos_blocks = (ub[:, 0] * pb).sum(-1)  # P x B
    neg_blocks = (ub * qb).sum(-1)  # P x K x B
    wp = configs.weights[configs.pos_key]  # P x C x B
    wn = configs.weights[configs.neg_key]  # P x K x C x B
    pos_scores = torch.bmm(wp, pos_blocks[:, :, None]).squeeze(-1)  # P x C
    neg_scores = torch.matmul(wn, neg_blocks[..., None]).squeeze(-1)  # P x K x C
    if configs.full:
        pos_scores = torch.cat([pos_blocks.sum(-1, keepdim=True), pos_scores], -1)
        neg_scores = torch.cat([neg_blocks.sum(-1, keepdim=True), neg_scores], -1)
    loss, z = _bpr_terms(pos_scores[:, None, :] - neg_scores, a)  # z: P x K x C'
    cp = -z.sum(1)  # P x C'
    first = 1 if configs.full else 0
    grad_pos_blocks = torch.bmm(cp[:, None, first:], wp).squeeze(1)  # P x B
    grad_neg_blocks = torch.matmul(z[..., None, first:], wn).squeeze(-2)  # P x K x B
    if configs.full:
        grad_pos_blocks += cp[:, :1]
        grad_neg_blocks += z[..., :1]
    gp = (grad_pos_blocks[..., None] * ub[:, 0]).view(num_pairs, dim)
    gq = (grad_neg_blocks[..., None] * ub).view(num_pairs, k, dim)
    gu = (grad_pos_blocks[..., None] * pb).view(num_pairs, dim)
    gu += (grad_neg_blocks[..., None] * qb).sum(1).view(num_pairs, dim)
    return loss, gu, gp, gq


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
    rows, dim = items.shape
    if num_blocks < 2 or rows == 0:
        return items.new_zeros(()), torch.zeros_like(items)
    x = items.view(rows, num_blocks, dim // num_blocks)
    sq = (x * x).sum(-1)  # R x B
    norm = sq.sqrt()
    scale = norm.clamp_min(NORM_EPS)
    n = x / scale[..., None]
    n_sq = sq / scale.pow(2)
    moment = torch.bmm(n.transpose(1, 2), n)  # R x w x w
    c = 1.0 / (num_blocks * (num_blocks - 1))
    per_item = (moment.pow(2).sum((1, 2)) - n_sq.pow(2).sum(-1)) * c
    h = torch.bmm(n, moment)  # (M n_b)^T, M symmetric
    h.addcmul_(n_sq[..., None], n, value=-1.0)
    along = (h * n).sum(-1) * (norm > NORM_EPS)  # the part the normalisation removes
    h.addcmul_(along[..., None], n, value=-1.0)
    h *= (4 * c * weight[:, None] / scale)[..., None]
    return (weight * per_item).sum(), h.view(rows, dim)
