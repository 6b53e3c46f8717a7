"""Local BPR training of many devices at once, each on its own private copy of the item rows.

Every device trains exactly as if it ran alone: its items, its negatives, its sub-configuration
samples and its minibatch order come from its own random stream, and it updates only its own
copy of the item rows it touches (positives and sampled negatives) and its own user vector.
Batching the devices of a cohort into one tensor program is exact because plain SGD on a sum of
per-device losses over disjoint parameters is the same as each device stepping on its own loss.

The loss and its gradients come from ``fedrule.model.objective`` (the centralised trainer's
objective too), each pair weighted by 1 / its device's minibatch size. Everything that does not
depend on parameter values (every device's schedule, each step's distinct rows and devices, where
each pair reads them) is laid out once before the first step (``fedrule.device.local_plan``); a
step is then slices, one call of the objective and the devices' optimizer step
(``fedrule.device.local_optimizer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import Rows
from fedrule.device.local_optimizer import make_local_optimizer
from fedrule.device.local_plan import CohortPlan, plan_cohort
from fedrule.device.local_spec import LocalSpec
from fedrule.device.update import (
    CohortUpdate,
    DeviceDeltas,
    UpdatePipeline,
    sum_cohort,
)
from fedrule.model.elastic import ElasticLayout
from fedrule.model.objective import (
    ConfigWeights,
    KnownDiversity,
    Objective,
    diversity_rows,
    objective_step,
)


def _config_weights(
    plan: CohortPlan, allowed: np.ndarray | None, layout: ElasticLayout
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
    plan: CohortPlan,
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
    plan = plan_cohort(train, allowed, layout, spec, rngs, n_items)
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
    optimizer = make_local_optimizer(
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
