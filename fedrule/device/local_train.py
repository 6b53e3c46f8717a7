"""Local BPR training of many devices at once, each on its own private copy of the item rows.

Every device trains exactly as if it ran alone: its items, its negatives, its sub-configuration
samples and its minibatch order come from its own random stream, and it updates only its own
copy of the item rows it touches (positives and sampled negatives) and its own user vector.
Batching the devices of a cohort into one tensor program is exact because plain SGD on a sum of
per-device losses over disjoint parameters is the same as each device stepping on its own loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import Rows
from fedrule.device.update import CohortUpdate, DeviceDeltas, UpdatePipeline, sum_cohort
from fedrule.model.elastic import ElasticLayout
from fedrule.model.mf import block_scores, diversity_per_item
from fedrule.model.supernet import SAMPLINGS, inside


@dataclass(frozen=True)
class LocalSpec:
    epochs: int
    batch_size: int
    lr: float
    negatives: int
    l2: float
    lambda_div: float
    sampling: str
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        assert self.sampling in SAMPLINGS
        assert self.optimizer in ("adam", "sgd")


class _LocalOptimizer:
    """Each device's own optimizer over its private rows and user vector, batched.

    ``sgd``: plain SGD. ``adam``: lazy Adam (as ``torch.optim.SparseAdam``): a device's rows are
    updated at the steps where they get a gradient, with the device's own step count for bias
    correction; its user vector gets a gradient at every step of the device. State starts fresh
    every round, as a new local optimizer on a device would.
    """

    def __init__(
        self,
        spec: LocalSpec,
        local: torch.Tensor,
        users: torch.Tensor,
        row_dev: torch.Tensor,
        row_mask: torch.Tensor | None,
    ) -> None:
        self.spec, self.local, self.users = spec, local, users
        self.row_dev, self.row_mask = row_dev, row_mask
        if spec.optimizer == "adam":
            self.m_rows = torch.zeros_like(local)
            self.v_rows = torch.zeros_like(local)
            self.m_users = torch.zeros_like(users)
            self.v_users = torch.zeros_like(users)
            self.steps = torch.zeros(users.shape[0])

    def step(
        self,
        rows: torch.Tensor,
        grad_rows: torch.Tensor | None,
        active: torch.Tensor,
        grad_users: torch.Tensor,
    ) -> None:
        """One step of the active devices; ``grad_rows`` None keeps the item rows fixed."""
        if grad_rows is None:
            self._step_users(active, grad_users)
            return
        unique, inverse = torch.unique(rows, return_inverse=True)
        grad = torch.zeros(unique.numel(), grad_rows.shape[1]).index_add_(0, inverse, grad_rows)
        if self.row_mask is not None:
            grad = grad * self.row_mask[unique]
        if self.spec.optimizer == "sgd":
            self.local.index_add_(0, unique, grad, alpha=-self.spec.lr)
        else:
            step = self.steps[self.row_dev[unique]] + 1  # the owning device's step count
            self._adam(self.local, self.m_rows, self.v_rows, unique, grad, step)
        self._step_users(active, grad_users)

    def _step_users(self, active: torch.Tensor, grad_users: torch.Tensor) -> None:
        if self.spec.optimizer == "sgd":
            self.users.index_add_(0, active, grad_users, alpha=-self.spec.lr)
            return
        self.steps[active] += 1
        self._adam(self.users, self.m_users, self.v_users, active, grad_users, self.steps[active])

    def _adam(
        self,
        param: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        index: torch.Tensor,
        grad: torch.Tensor,
        step: torch.Tensor,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        m_new = beta1 * m[index] + (1 - beta1) * grad
        v_new = beta2 * v[index] + (1 - beta2) * grad * grad
        m[index], v[index] = m_new, v_new
        correction1 = (1 - beta1**step)[:, None]
        correction2 = (1 - beta2**step)[:, None]
        update = (m_new / correction1) / ((v_new / correction2).sqrt() + eps)
        if self.row_mask is not None and param is self.local:
            update = update * self.row_mask[index]
        param[index] -= self.spec.lr * update


def _negatives(
    rng: np.random.Generator, positives: np.ndarray, n_items: int, size: tuple
) -> np.ndarray:
    draws = rng.integers(0, n_items, size=size)
    for _ in range(8):
        clash = np.isin(draws, positives)
        if not clash.any() or positives.size >= n_items:
            break
        draws[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return draws


def _sub_configs(
    layout: ElasticLayout,
    sampling: str,
    rng: np.random.Generator,
    steps: int,
    allowed: np.ndarray | None,
) -> np.ndarray:
    """Sub-configurations for ``steps`` steps of one device: steps x S x G x B (S = 0 or 2),
    drawn inside the blocks the device holds (``allowed``, budgeted mode)."""
    if sampling == "none":
        return np.zeros((steps, 0, *layout.shape), dtype=bool)
    g, b = layout.shape
    counts = rng.integers(layout.min_blocks, b + 1, size=(steps, 2, g))
    if sampling == "sandwich":
        counts[:, 0, :] = max(layout.min_blocks, 1)
    ranks = np.argsort(rng.random((steps, 2, g, b)), axis=-1).argsort(axis=-1)
    configs = ranks < counts[..., None]
    return configs if allowed is None else inside(configs, allowed, rng)


@dataclass
class LocalResult:
    """What local training leaves on each device: its own update (before any sum), its loss,
    and its new user vector."""

    deltas: DeviceDeltas
    loss_sum: float
    loss_count: float
    user_vecs: torch.Tensor


def local_train(
    table: torch.Tensor,
    user_vecs: torch.Tensor,
    train: Rows,
    allowed: np.ndarray | None,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    *,
    table_of_device: np.ndarray | None = None,
    train_items: bool = True,
) -> LocalResult:
    """Run ``spec.epochs`` local epochs on every device; return each device's update (not yet
    summed with anyone's) and the devices' new user vectors.

    ``table`` is the item table every device received (n x d), or a stack of the tables received
    (P x n x d) with ``table_of_device`` saying which. ``allowed`` (devices x G x B) limits what a
    device holds and trains (budgeted mode); ``None`` means every device trains every block.
    With ``train_items=False`` only the user vectors learn (on-device personalisation).
    """
    num_devices = train.counts.size
    tables = table if table.dim() == 3 else table[None]
    if table_of_device is None:
        table_of_device = np.zeros(num_devices, dtype=np.int64)
    n_items, dim = tables.shape[1:]
    nb = layout.num_blocks
    groups = layout.group_index
    # ---- each device's schedule, from its own random stream
    dev_parts, pos_parts, neg_parts, step_parts, slot_parts, configs = [], [], [], [], [], []
    slot_base = 0
    for k in range(num_devices):
        items = train.of(k)
        n = items.size
        if n == 0:
            continue
        rng = rngs[k]
        steps_per_epoch = -(-n // spec.batch_size)
        steps = spec.epochs * steps_per_epoch
        order = np.concatenate([rng.permutation(n) for _ in range(spec.epochs)])
        pos = items[order]
        neg = _negatives(rng, items, n_items, (pos.size, spec.negatives))
        epoch = np.repeat(np.arange(spec.epochs), n)
        local_step = epoch * steps_per_epoch + np.tile(np.arange(n) // spec.batch_size, spec.epochs)
        dev_parts.append(np.full(pos.size, k))
        pos_parts.append(pos)
        neg_parts.append(neg)
        step_parts.append(local_step)
        slot_parts.append(slot_base + local_step)
        held = None if allowed is None else allowed[k]
        configs.append(_sub_configs(layout, spec.sampling, rng, steps, held))
        slot_base += steps
    if not dev_parts:
        empty = DeviceDeltas.empty(train.counts, dim, nb)
        return LocalResult(empty, 0.0, 0.0, user_vecs)
    dev = np.concatenate(dev_parts)
    pos = np.concatenate(pos_parts)
    neg = np.concatenate(neg_parts)
    step = np.concatenate(step_parts)
    slot = np.concatenate(slot_parts)
    sub = layout.group_weights(np.concatenate(configs))  # slots x S x G x B (rescaled)
    # ---- private rows: one copy of each (device, item) a device touches
    keys = np.concatenate([dev * n_items + pos, (dev[:, None] * n_items + neg).ravel()])
    uniq, inverse = np.unique(keys, return_inverse=True)
    pos_row = torch.from_numpy(inverse[: pos.size])
    neg_row = torch.from_numpy(inverse[pos.size :].reshape(neg.shape))
    row_dev, row_item = uniq // n_items, uniq % n_items
    local = tables[torch.from_numpy(table_of_device[row_dev]), torch.from_numpy(row_item)].clone()
    row_dev_t = torch.from_numpy(row_dev)
    row_mask = None
    if allowed is not None:
        allowed_t = torch.from_numpy(allowed).float()
        row_block = allowed_t[torch.from_numpy(row_dev), groups[torch.from_numpy(row_item)]]
        row_mask = row_block.repeat_interleave(dim // nb, dim=1)
        local = local * row_mask
    base = layout.group_weights(allowed) if allowed is not None and layout.rescale else None
    initial = local.clone()
    users = user_vecs.clone()
    optimizer = _LocalOptimizer(spec, local, users, row_dev_t, row_mask)
    # ---- steps: the t-th minibatch of every device that still has one
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(step.max() + 2))
    dev_t = torch.from_numpy(dev)
    pos_group = groups[torch.from_numpy(pos)]
    neg_group = groups[torch.from_numpy(neg)]
    slot_t = torch.from_numpy(slot)
    loss_sum = 0.0
    loss_count = 0.0
    for t in range(step.max() + 1):
        idx = torch.from_numpy(order[bounds[t] : bounds[t + 1]])
        d = dev_t[idx]
        active = torch.unique(d)
        batch = torch.bincount(d, minlength=num_devices).float()
        weight = 1.0 / batch[d]  # each device's loss is a mean over its own minibatch
        n_pairs = idx.numel()
        rows_t = torch.cat([pos_row[idx], neg_row[idx].reshape(-1)])
        leaf = local[rows_t].requires_grad_(True)  # only the rows this step touches
        user_leaf = users[active].requires_grad_(True)
        u = user_leaf[torch.searchsorted(active, d)]
        p = leaf[:n_pairs]
        q = leaf[n_pairs:].reshape(n_pairs, spec.negatives, dim)
        pos_blocks = block_scores(u, p, nb)
        neg_blocks = block_scores(u[:, None, :].expand_as(q), q, nb)
        if base is None:
            per_pair = _bpr(pos_blocks.sum(-1), neg_blocks.sum(-1))
        else:  # rescaled blocks of what a budgeted device holds
            wp, wn = base[d, pos_group[idx]], base[d[:, None], neg_group[idx]]
            per_pair = _bpr((pos_blocks * wp).sum(-1), (neg_blocks * wn).sum(-1))
        if sub.shape[1]:
            slots = slot_t[idx]
            for s in range(sub.shape[1]):  # the device's sampled sub-configurations this step
                wp = sub[slots, s, pos_group[idx]]
                wn = sub[slots[:, None], s, neg_group[idx]]
                per_pair = per_pair + _bpr((pos_blocks * wp).sum(-1), (neg_blocks * wn).sum(-1))
        loss = (weight * per_pair).sum()
        if spec.l2:
            norms = u.pow(2).sum(-1) + p.pow(2).sum(-1) + q.pow(2).sum((-1, -2))
            loss = loss + spec.l2 * (weight * norms).sum()
        if spec.lambda_div:
            spread = diversity_per_item(p, nb) + diversity_per_item(q, nb).sum(-1)
            loss = loss + spec.lambda_div * (weight * spread / (1 + spec.negatives)).sum()
        loss_sum += float((weight * per_pair).sum().detach())
        loss_count += float(active.numel())
        grad_rows, grad_users = torch.autograd.grad(loss, (leaf, user_leaf))
        optimizer.step(rows_t, grad_rows if train_items else None, active, grad_users)
    # ---- each device's own update: its private rows minus what it received
    kept = row_block.numpy() if allowed is not None else np.ones((uniq.size, nb), np.float32)
    deltas = DeviceDeltas(
        row_device=row_dev,
        row_item=row_item,
        delta=(local - initial).numpy(),
        kept=kept,
        weight=train.counts.astype(np.float64),
    )
    return LocalResult(deltas, loss_sum, loss_count, users.detach())


def train_cohort(
    table: torch.Tensor,
    user_vecs: torch.Tensor,
    train: Rows,
    allowed: np.ndarray | None,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    *,
    table_of_device: np.ndarray | None = None,
    pipeline: UpdatePipeline | None = None,
) -> tuple[CohortUpdate, torch.Tensor]:
    """Local training, then the per-device update pipeline on each device's own update, then
    the cohort's weighted sum (what a node sends back)."""
    result = local_train(
        table, user_vecs, train, allowed, layout, spec, rngs, table_of_device=table_of_device
    )
    deltas = result.deltas
    if pipeline is not None:
        deltas = pipeline.apply(deltas, rngs)
    update = sum_cohort(deltas, layout.block_dim * layout.bytes_per_value)
    update.loss_sum, update.loss_count = result.loss_sum, result.loss_count
    return update, result.user_vecs


def _bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Per pair: mean over its negatives of ``-log sigmoid(pos - neg)``."""
    return -torch.nn.functional.logsigmoid(pos[:, None] - neg).mean(-1)
