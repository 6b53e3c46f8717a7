"""A cohort's local training laid out once, before its first step.

Everything that does not depend on parameter values — every device's schedule (its positives in
minibatch order, its negatives, its sub-configuration draws, each from its own random stream),
each step's distinct private rows and devices, where each pair reads them — is laid out here for
the whole cohort at once; a step of the trainer is then slices of this plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import Rows
from fedrule.device.local_spec import LocalSpec
from fedrule.device.update import distinct
from fedrule.model.elastic import ElasticLayout
from fedrule.model.negatives import ItemDistribution, NegativeSampler, redraw_clashes
from fedrule.model.supernet import SubconfigDraws, build_subconfigs, draw_subconfigs, inside


def negative_distribution(layout: ElasticLayout, exponent: float) -> ItemDistribution | None:
    """A device's sampling distribution of negatives (None: uniform): in proportion to each
    item's popularity estimated from the layout it received, ``** exponent``. Groups hold equal
    shares of the interactions, so an item's estimate is 1 / the size of its group."""
    if exponent == 0:
        return None
    size = layout.group_sizes.astype(np.float64)
    return ItemDistribution(size[layout.group_of_item] ** -exponent)


@dataclass(frozen=True)
class Schedules:
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


def draw_schedules(
    train: Rows,
    trained: np.ndarray,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    n_items: int,
) -> Schedules:
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
    return Schedules(dev, pos, neg.reshape(-1, k_neg), step, slot, weight, draws, slot_bounds)


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
    alone = draw_schedules(rows, np.array([0]), layout, spec, [rng], n_items)
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


def step_segments(
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
class CohortPlan:
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


def plan_cohort(
    train: Rows,
    allowed: np.ndarray | None,
    layout: ElasticLayout,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    n_items: int,
) -> CohortPlan | None:
    """Draw every device's schedule and lay the cohort out (None: nothing to train)."""
    trained = np.flatnonzero(train.counts > 0) if spec.epochs else np.zeros(0, np.int64)
    if trained.size == 0:
        return None
    drawn = draw_schedules(train, trained, layout, spec, rngs, n_items)
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
    step_rows, row_bounds, entry_local = step_segments(step[:, None], entries, uniq.size, steps)
    step_devs, dev_bounds, pair_dev = step_segments(step, dev, train.counts.size, steps)
    group = layout.group_of_item
    slot_dev = np.zeros(num_slots, dtype=np.int64)
    slot_dev[slot] = dev
    return CohortPlan(
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
