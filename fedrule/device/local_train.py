"""Local BPR training of many devices at once, each on its own private copy of the item rows.

Every device trains exactly as if it ran alone: its items, its negatives, its sub-configuration
samples and its minibatch order come from its own random stream, and it updates only its own
copy of the item rows it touches (positives and sampled negatives) and its own user vector.
Batching the devices of a cohort into one tensor program is exact because plain SGD on a sum of
per-device losses over disjoint parameters is the same as each device stepping on its own loss.

The loss and its gradients come from ``fedrule.model.objective`` (the centralised trainer's
objective too), each pair weighted by 1 / its device's minibatch size. Everything that does not
depend on parameter values (every device's schedule, each step's distinct rows and devices, where
each pair reads them) is laid out once before the first step (``_plan``); a step is then slices,
one call of the objective and the devices' optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import Rows
from fedrule.device.update import (
    CohortUpdate,
    DeviceDeltas,
    UpdatePipeline,
    distinct,
    sum_cohort,
)
from fedrule.model.elastic import ElasticLayout
from fedrule.model.negatives import ItemDistribution, NegativeSampler, redraw_clashes
from fedrule.model.objective import (
    ConfigWeights,
    KnownDiversity,
    Objective,
    diversity_rows,
    objective_step,
)
from fedrule.model.supernet import (
    SAMPLINGS,
    SubconfigDraws,
    build_subconfigs,
    draw_subconfigs,
    inside,
)

OPTIMIZERS = ("adam", "rowwise-adam", "sgd")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # the devices' Adam


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
    compiled: bool = False  # torch.compile the objective's kernels
    negative_exponent: float = 0.0  # negatives in proportion to estimated popularity ** this

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, not {self.sampling!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.negatives < 1:
            raise ValueError("epochs must be >= 0, batch_size and negatives >= 1")


class _LocalOptimizer:
    """Each device's own optimizer over its private rows and user vector, batched.

    ``sgd``: plain SGD. ``adam``: lazy Adam (as ``torch.optim.SparseAdam``): a device's rows are
    updated at the steps where they get a gradient, with the device's own step count for bias
    correction; its user vector gets a gradient at every step of the device. State starts fresh
    every round, as a new local optimizer on a device would. ``rowwise-adam``: the same, but an
    item row's second moment is one value, the mean of its squared gradient entries over the
    entries the device may train (as in row-wise Adagrad for embedding tables, FBGEMM): an
    entry-wise first step is lr * sign(g) on every entry a device touched, while a row-wise
    step keeps the entries' relative sizes, so blocks that few sub-configurations use move
    little. The user vector stays entry-wise.

    ``touches`` (every step's rows, step after step) says which rows get a gradient more than
    once: only they keep Adam moments. A row stepped once (most sampled negatives) has zero
    moments before its step and none after, so its update is Adam's first step in closed form.
    """

    def __init__(
        self,
        spec: LocalSpec,
        local: torch.Tensor,
        users: torch.Tensor,
        row_dev: torch.Tensor,
        row_mask: torch.Tensor | None,
        touches: torch.Tensor,
    ) -> None:
        self.spec, self.local, self.users = spec, local, users
        self.row_dev, self.row_mask = row_dev, row_mask
        self.rowwise = spec.optimizer == "rowwise-adam"
        if spec.optimizer != "sgd":
            again = torch.bincount(touches, minlength=local.shape[0]) > 1
            self.state_of = torch.cumsum(again, 0).sub_(1).masked_fill_(~again, -1)
            stateful = int(again.sum())
            self.m_rows = local.new_zeros(stateful, local.shape[1])
            self.v_rows = local.new_zeros(stateful, 1 if self.rowwise else local.shape[1])
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
        """One step of the active devices on their (distinct) private ``rows``; ``grad_rows``
        None keeps the item rows fixed."""
        if grad_rows is not None:
            mask = None if self.row_mask is None else self.row_mask.index_select(0, rows)
            if mask is not None:
                grad_rows = grad_rows * mask
            if self.spec.optimizer == "sgd":
                self.local.index_add_(0, rows, grad_rows, alpha=-self.spec.lr)
            else:  # each row with its owning device's step count
                step = self.steps.index_select(0, self.row_dev.index_select(0, rows)) + 1
                update = self._row_update(rows, grad_rows, step, mask)
                if mask is not None:
                    update = update.mul_(mask)
                # distinct rows: gather, subtract, scatter back (bit for bit index_add_'s result,
                # and several times faster on CPU than index_add_, which serialises its writes)
                self.local.index_copy_(0, rows, self.local.index_select(0, rows).sub_(update))
        self._step_users(active, grad_users)

    def _row_update(
        self,
        rows: torch.Tensor,
        grad: torch.Tensor,
        step: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Adam's update of ``rows``: the first step in closed form for rows stepped once, the
        moments' step for the others."""
        # m = (1 - b1) g, v = (1 - b2) g^2: lr m / c1 / (sqrt(v / c2) + eps) in four passes
        root = torch.sqrt((1 - BETA2) / (1 - BETA2**step))[:, None]
        scale = (self.spec.lr * (1 - BETA1) / (1 - BETA1**step))[:, None]
        square = _row_mean_square(grad, mask) if self.rowwise else None
        size = grad.abs() if square is None else square.sqrt()
        inverse = size.mul_(root).add_(EPS).reciprocal_()
        update = (grad * inverse if self.rowwise else inverse.mul_(grad)).mul_(scale)
        state = self.state_of.index_select(0, rows)
        again = torch.nonzero(state >= 0).squeeze(1)
        if again.numel():
            kept = _adam_moments(
                self.m_rows,
                self.v_rows,
                state.index_select(0, again),
                grad.index_select(0, again),
                None if square is None else square.index_select(0, again),
            )
            update.index_copy_(
                0, again, _adam_update(*kept, step.index_select(0, again), self.spec.lr)
            )
        return update

    def _step_users(self, active: torch.Tensor, grad_users: torch.Tensor) -> None:
        if self.spec.optimizer == "sgd":
            self.users.index_add_(0, active, grad_users, alpha=-self.spec.lr)
            return
        self.steps.index_add_(0, active, torch.ones(active.numel()))
        step = self.steps.index_select(0, active)
        # entry-wise either way; rowwise-adam adds the square it computed (its studies' last
        # bits), adam keeps torch's addcmul (the earlier studies' last bits)
        square = grad_users.square() if self.rowwise else None
        moments = _adam_moments(self.m_users, self.v_users, active, grad_users, square)
        update = _adam_update(*moments, step, self.spec.lr)
        self.users.index_copy_(0, active, self.users.index_select(0, active).sub_(update))


def _adam_moments(
    m: torch.Tensor,
    v: torch.Tensor,
    index: torch.Tensor,
    grad: torch.Tensor,
    square: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's moments of the (distinct) rows ``index`` after their gradient ``grad``, stored
    back into ``m`` and ``v``; returns the new moments of those rows. ``v`` follows ``square``
    (row-wise: one mean square per row), or by default the squared gradient entry by entry."""
    m_new = m.index_select(0, index).mul_(BETA1).add_(grad, alpha=1 - BETA1)
    v_new = v.index_select(0, index).mul_(BETA2)
    if square is None:  # entry-wise (addcmul: the arithmetic of torch's Adam, bit for bit)
        v_new.addcmul_(grad, grad, value=1 - BETA2)
    else:
        v_new.add_(square, alpha=1 - BETA2)
    m.index_copy_(0, index, m_new)
    v.index_copy_(0, index, v_new)
    return m_new, v_new


def _row_mean_square(grad: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Each row's mean squared gradient entry over the entries the device may train (rows x 1):
    a budgeted device's row steps as far as a full device's, however few blocks it holds."""
    total = grad.square().sum(1, keepdim=True)
    if mask is None:
        return total.div_(grad.shape[1])
    return total.div_(mask.sum(1, keepdim=True).clamp_(min=1))


def _adam_update(m: torch.Tensor, v: torch.Tensor, step: torch.Tensor, lr: float) -> torch.Tensor:
    """Adam's update from the moments ``m``, ``v`` (consumed) at per-row step counts."""
    correction1 = 1 - BETA1**step
    correction2 = 1 - BETA2**step
    denom = v.div_(correction2[:, None]).sqrt_().add_(EPS)
    return m.div_(denom).mul_((lr / correction1)[:, None])


def negative_distribution(layout: ElasticLayout, exponent: float) -> ItemDistribution | None:
    """A device's sampling distribution of negatives (None: uniform): in proportion to each
    item's popularity estimated from the layout it received, ``** exponent``. Groups hold equal
    shares of the interactions, so an item's estimate is 1 / the size of its group."""
    if exponent == 0:
        return None
    size = layout.group_sizes.astype(np.float64)
    return ItemDistribution(size[layout.group_of_item] ** -exponent)


@dataclass(frozen=True)
class _Schedules:
    """What the trained devices of a cohort train this round, device after device: each pair
    (a positive in minibatch order, epoch after epoch, and its negatives), its device, step,
    slot (the device's step among all the cohort's steps) and weight, and the draws of every
    slot's sub-configurations."""

    dev: np.ndarray
    pos: np.ndarray
    neg: np.ndarray  # pairs x K
    step: np.ndarray
    slot: np.ndarray
    weight: np.ndarray  # 1 / the size of the pair's minibatch
    draws: SubconfigDraws
    slot_bounds: np.ndarray  # the slots of the j-th trained device: slot_bounds[j]:[j + 1]


def _schedules(
    train: Rows,
    trained: np.ndarray,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    n_items: int,
) -> _Schedules:
    """Every trained device's schedule, each from its own random stream in this order: its
    minibatch orders (one permutation per epoch), its negatives (drawn to avoid its positives:
    uniform, or by the popularity it estimates from the layout, clashes redrawn by
    ``redraw_clashes``) and its steps' sub-configurations (``draw_subconfigs``). Only the
    draws are made device by device; everything else is laid out for the cohort at once."""
    epochs, k_neg, bs = spec.epochs, spec.negatives, spec.batch_size
    by = negative_distribution(layout, spec.negative_exponent)
    counts = train.counts[trained]
    orders, raw = [], []
    for d, n in zip(trained.tolist(), counts.tolist(), strict=True):
        rng = rngs[d]
        orders.extend(rng.permutation(n) for _ in range(epochs))
        size = n * epochs * k_neg
        raw.append(rng.random(size) if by is not None else rng.integers(0, n_items, size=size))
    pairs = counts * epochs
    dev = np.repeat(trained, pairs)
    within = np.arange(dev.size) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    n = np.repeat(counts, pairs)
    pos = train.items[np.concatenate(orders) + np.repeat(train.indptr[trained], pairs)]
    in_epoch = within % n // bs
    per_epoch = -(-counts // bs)
    step = within // n * np.repeat(per_epoch, pairs) + in_epoch
    weight = 1.0 / np.minimum(bs, n - in_epoch * bs)
    neg = np.concatenate(raw)
    if by is not None:
        neg = by.items(neg)
    _redraw_known(neg, np.repeat(trained, pairs * k_neg), train, by, rngs, n_items)
    steps = per_epoch * epochs
    slot_bounds = np.concatenate([[0], np.cumsum(steps)])
    slot = np.repeat(slot_bounds[:-1], pairs) + step
    drawn = [
        draw_subconfigs(layout, spec.sampling, rngs[d], s)
        for d, s in zip(trained.tolist(), steps.tolist(), strict=True)
    ]
    draws = SubconfigDraws(
        np.concatenate([x.counts for x in drawn]), np.concatenate([x.scores for x in drawn])
    )
    return _Schedules(dev, pos, neg.reshape(-1, k_neg), step, slot, weight, draws, slot_bounds)


def device_schedule(
    rng: np.random.Generator,
    items: np.ndarray,
    n_items: int,
    spec: LocalSpec,
    layout: ElasticLayout,
) -> tuple[np.ndarray, np.ndarray, SubconfigDraws]:
    """What one device with positives ``items`` trains from its stream ``rng`` (as it would in
    any cohort): its positives in step order, their negatives and its sub-configuration draws."""
    rows = Rows(np.array([0, items.size]), items)
    alone = _schedules(rows, np.array([0]), layout, spec, [rng], n_items)
    return alone.pos, alone.neg, alone.draws


def _redraw_known(
    neg: np.ndarray,
    neg_dev: np.ndarray,
    train: Rows,
    by: ItemDistribution | None,
    rngs: list[np.random.Generator],
    n_items: int,
) -> None:
    """Redraw, in place, the negatives (flat, device after device) that are their device's
    positives (``redraw_clashes``, the cohort checked at once), each device from its own
    stream, as it would redraw its negatives alone. A device holding every item keeps its
    draws."""
    users, items = train.pairs()
    known = NegativeSampler(users, items, n_items)
    can_avoid = train.counts < n_items

    def clashes(at: np.ndarray) -> np.ndarray:
        dev = neg_dev[at]
        return known.is_positive(dev, neg[at]) & can_avoid[dev]

    def draw(at: np.ndarray, uniform: bool) -> np.ndarray:
        weighted = by is not None and not uniform
        devs, many = np.unique(neg_dev[at], return_counts=True)  # ``at`` ascends: device order
        new = np.concatenate(
            [
                rngs[d].random(c) if weighted else rngs[d].integers(0, n_items, size=c)
                for d, c in zip(devs.tolist(), many.tolist(), strict=True)
            ]
        )
        return by.items(new) if weighted else new

    redraw_clashes(neg, clashes, draw)


def _segments(
    step: np.ndarray, values: np.ndarray, size: int, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``values`` (< size) of every step: (distinct values in step order, bounds of
    each step's run, position of each entry in its step's run)."""
    keys, inverse = distinct(step * size + values)
    bounds = np.searchsorted(keys // size, np.arange(steps + 1))
    return keys % size, bounds, inverse - bounds[step]


@dataclass(frozen=True)
class _Split:
    """Each step's rows split into those the device touches for the first time (``first``:
    positions in the step's rows, private row ids, bounds per step) and the rest."""

    first: torch.Tensor
    first_row: np.ndarray
    first_bounds: np.ndarray
    rest: torch.Tensor
    rest_bounds: np.ndarray

    @staticmethod
    def of(step_rows: np.ndarray, row_bounds: np.ndarray) -> _Split:
        first = np.zeros(step_rows.size, dtype=bool)
        first[np.unique(step_rows, return_index=True)[1]] = True  # rows run in step order
        position = np.arange(step_rows.size) - np.repeat(row_bounds[:-1], np.diff(row_bounds))
        at_first, at_rest = np.flatnonzero(first), np.flatnonzero(~first)
        return _Split(
            first=torch.from_numpy(position[at_first]),
            first_row=step_rows[at_first],
            first_bounds=np.searchsorted(at_first, row_bounds),
            rest=torch.from_numpy(position[at_rest]),
            rest_bounds=np.searchsorted(at_rest, row_bounds),
        )


@dataclass
class _Plan:
    """A cohort's local training laid out once, before the first step: every pair (a device's
    positive and its negatives) in step order, each step's distinct private rows and devices,
    and where every pair reads its rows, its device and its block weights."""

    steps: int
    bounds: np.ndarray  # pairs of step t: bounds[t]:bounds[t + 1]
    pair_dev: torch.Tensor  # per pair: its device's position among the step's devices
    pos_local: torch.Tensor  # per pair: its positive's position among the step's rows
    neg_local: torch.Tensor  # pairs x K
    pair_weight: torch.Tensor  # 1 / the size of the device's minibatch
    pos_key: torch.Tensor  # slot x G + group: where a positive reads its block weights
    neg_key: torch.Tensor
    step_rows: torch.Tensor  # each step's distinct private rows, step after step
    row_bounds: np.ndarray
    step_devs: torch.Tensor  # each step's devices, step after step
    dev_bounds: np.ndarray
    row_dev: np.ndarray  # per private row: its device and its item
    row_item: np.ndarray
    slot_dev: np.ndarray  # per slot (a device's step): the device
    configs: np.ndarray  # per slot: the sampled sub-configurations (slots x S x G x B)
    fresh: _Split  # each step's rows that no step changed before it (first touch), and the rest


def _plan(
    train: Rows,
    allowed: np.ndarray | None,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    n_items: int,
) -> _Plan | None:
    """Draw every device's schedule and lay the cohort out (None: nothing to train)."""
    trained = np.flatnonzero(train.counts > 0) if spec.epochs else np.zeros(0, np.int64)
    if trained.size == 0:
        return None
    drawn = _schedules(train, trained, layout, spec, rngs, n_items)
    configs = build_subconfigs([drawn.draws], layout)  # every device's steps at once
    if allowed is not None:  # each restricted to what its device holds, from its own stream
        bounds = drawn.slot_bounds
        for j, k in enumerate(trained.tolist()):
            part = slice(bounds[j], bounds[j + 1])
            configs[part] = inside(configs[part], allowed[k], rngs[k])
    step = drawn.step  # a stable sort by step (radix on 16-bit steps)
    order = np.argsort(step.astype(np.int16) if step.max() < 2**15 else step, kind="stable")
    dev, pos, neg, step, weight, slot = (
        x[order] for x in (drawn.dev, drawn.pos, drawn.neg, step, drawn.weight, drawn.slot)
    )
    num_slots = int(drawn.slot_bounds[-1])
    steps = int(step.max()) + 1
    # private rows: one copy of each (device, item) a device touches
    keys = np.concatenate([dev * n_items + pos, (dev[:, None] * n_items + neg).ravel()])
    uniq, inverse = distinct(keys)
    entries = np.concatenate([inverse[: pos.size, None], inverse[pos.size :].reshape(neg.shape)], 1)
    step_rows, row_bounds, entry_local = _segments(step[:, None], entries, uniq.size, steps)
    step_devs, dev_bounds, pair_dev = _segments(step, dev, train.counts.size, steps)
    group = layout.group_of_item
    slot_dev = np.zeros(num_slots, dtype=np.int64)
    slot_dev[slot] = dev
    return _Plan(
        steps=steps,
        bounds=np.searchsorted(step, np.arange(steps + 1)),
        pair_dev=torch.from_numpy(pair_dev),
        pos_local=torch.from_numpy(np.ascontiguousarray(entry_local[:, 0])),
        neg_local=torch.from_numpy(np.ascontiguousarray(entry_local[:, 1:])),
        pair_weight=torch.from_numpy(weight.astype(np.float32)),
        pos_key=torch.from_numpy(slot * layout.num_groups + group[pos]),
        neg_key=torch.from_numpy(slot[:, None] * layout.num_groups + group[neg]),
        step_rows=torch.from_numpy(step_rows),
        row_bounds=row_bounds,
        step_devs=torch.from_numpy(step_devs),
        dev_bounds=dev_bounds,
        row_dev=uniq // n_items,
        row_item=uniq % n_items,
        slot_dev=slot_dev,
        configs=configs,
        fresh=_Split.of(step_rows, row_bounds),
    )


def _config_weights(
    plan: _Plan, allowed: np.ndarray | None, layout: ElasticLayout
) -> tuple[torch.Tensor | None, bool]:
    """Block weights per (slot, group) of the configurations each step trains (slots*G x C x B),
    and whether the full configuration is trained besides them (None, True: full only).

    A budgeted device with rescaling trains what it holds, rescaled, instead of the full one.
    """
    base = allowed is not None and layout.rescale
    if plan.configs.shape[1] == 0 and not base:
        return None, True
    weights = layout.group_weights(plan.configs)  # slots x S x G x B
    if base:
        held = layout.group_weights(allowed)[torch.from_numpy(plan.slot_dev)]
        weights = torch.cat([held[:, None], weights], dim=1)
    num_configs, b = weights.shape[1], layout.num_blocks
    return weights.transpose(1, 2).reshape(-1, num_configs, b).contiguous(), not base


def _known_diversity(
    plan: _Plan,
    allowed: np.ndarray | None,
    tables: torch.Tensor,
    table_of_device: np.ndarray,
    num_blocks: int,
    spec: LocalSpec,
    train_items: bool,
) -> Callable[[int], KnownDiversity] | None:
    """Diversity of the rows a step touches first, looked up: until a device's first step on a
    row, its copy is the row it received, so its diversity term is the received table's, computed
    once per cohort. (Budgeted devices hold masked copies: not looked up.)"""
    if allowed is not None or not spec.lambda_div or not train_items:
        return None
    n_items, dim = tables.shape[1:]
    flat = tables.reshape(-1, dim)
    value, grad = diversity_rows(flat, num_blocks, torch.ones(flat.shape[0]))
    first_row = plan.fresh.first_row
    key = torch.from_numpy(
        table_of_device[plan.row_dev[first_row]] * n_items + plan.row_item[first_row]
    )
    first_value, first_grad = value.index_select(0, key), grad.index_select(0, key)
    split = plan.fresh

    def at(t: int) -> KnownDiversity:
        first = slice(split.first_bounds[t], split.first_bounds[t + 1])
        rest = slice(split.rest_bounds[t], split.rest_bounds[t + 1])
        return KnownDiversity(
            split.first[first], first_value[first], first_grad[first], split.rest[rest]
        )

    return at


def _minus_received(
    local: torch.Tensor,
    received: torch.Tensor,
    row_source: torch.Tensor,
    row_mask: torch.Tensor | None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Each private row minus the row its device received (``received[row_source]``, masked as
    it held it), in place, a chunk at a time (no second copy of every private row is kept)."""
    for start in range(0, local.shape[0], chunk):
        part = slice(start, start + chunk)
        before = received.index_select(0, row_source[part])
        if row_mask is not None:
            before.mul_(row_mask[part])
        local[part].sub_(before)
    return local


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
    plan = _plan(train, allowed, layout, spec, rngs, n_items)
    if plan is None:
        return LocalResult(DeviceDeltas.empty(train.counts, dim, nb), 0.0, 0.0, user_vecs)
    row_dev, row_item = plan.row_dev, plan.row_item
    received = tables.reshape(-1, dim)  # the received tables' rows, table after table
    row_source = torch.from_numpy(table_of_device[row_dev] * n_items + row_item)
    local = received.index_select(0, row_source)
    row_mask = row_block = None
    if allowed is not None:
        allowed_t = torch.from_numpy(allowed).float()
        row_block = allowed_t[torch.from_numpy(row_dev), layout.group_index[row_item]]
        row_mask = row_block.repeat_interleave(dim // nb, dim=1)
        local.mul_(row_mask)
    users = user_vecs.clone()
    optimizer = _LocalOptimizer(
        spec, local, users, torch.from_numpy(row_dev), row_mask, plan.step_rows
    )
    objective = Objective(nb, spec.l2, spec.lambda_div, spec.compiled)
    weights, full = _config_weights(plan, allowed, layout)
    known = _known_diversity(plan, allowed, tables, table_of_device, nb, spec, train_items)
    loss_sum = torch.zeros(())
    loss_count = 0
    for t in range(plan.steps):
        pairs = slice(plan.bounds[t], plan.bounds[t + 1])
        rows = plan.step_rows[plan.row_bounds[t] : plan.row_bounds[t + 1]]
        active = plan.step_devs[plan.dev_bounds[t] : plan.dev_bounds[t + 1]]
        configs = None
        if weights is not None:
            configs = ConfigWeights(weights, plan.pos_key[pairs], plan.neg_key[pairs], full)
        res = objective_step(
            objective,
            users.index_select(0, active),
            local.index_select(0, rows),
            plan.pair_dev[pairs],
            plan.pos_local[pairs],
            plan.neg_local[pairs],
            pair_weight=plan.pair_weight[pairs],
            configs=configs,
            known=None if known is None else known(t),
        )
        loss_sum += res.bpr
        loss_count += active.numel()
        optimizer.step(rows, res.grad_items if train_items else None, active, res.grad_users)
    # ---- each device's own update: its private rows minus what it received
    kept = row_block.numpy() if allowed is not None else np.ones((row_dev.size, nb), np.float32)
    deltas = DeviceDeltas(
        row_device=row_dev,
        row_item=row_item,
        delta=_minus_received(local, received, row_source, row_mask).numpy(),
        kept=kept,
        weight=train.counts.astype(np.float64),
    )
    return LocalResult(deltas, float(loss_sum), float(loss_count), users)


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
    return cohort_reply(result, pipeline, rngs, layout.block_dim * layout.bytes_per_value)


def cohort_reply(
    result: LocalResult,
    pipeline: UpdatePipeline | None,
    rngs: list[np.random.Generator],
    bytes_per_block: int,
) -> tuple[CohortUpdate, torch.Tensor]:
    """The per-device update pipeline on each device's own update, then the cohort's weighted
    sum with its loss (what a node sends back), and the devices' new user vectors."""
    deltas = result.deltas
    if pipeline is not None:
        deltas = pipeline.apply(deltas, rngs)
    update = sum_cohort(deltas, bytes_per_block)
    update.loss_sum, update.loss_count = result.loss_sum, result.loss_count
    return update, result.user_vecs
