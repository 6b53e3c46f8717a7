"""Local BPR training of compressed item tables (hashing, quotient-remainder), many devices at once.

A device of these formats holds a parameter table whose item embeddings are elementwise
products of rows (``ComposedTable``: one row per item for hashing, a quotient and a remainder
row for QR). It trains exactly as the plain device trainer (``fedrule.device.local_train``):
the same schedule from its own random stream (positives in minibatch order, negatives that avoid
its positives), the same objective and pair weights, the same lazy optimizer. What changes is
what it updates: its own copy of the *parameter rows* its items use, so two of its items that
share a row share that row's update (the centralised codec trainer's ``embed_grad``).

Everything that does not depend on parameter values is laid out before the first step: the
cohort's private item rows come from the plain trainer's plan; here each step also gets its
distinct private parameter rows and, per factor, where each of its items reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import Rows
from fedrule.device.local_optimizer import make_local_optimizer
from fedrule.device.local_plan import plan_cohort, step_segments
from fedrule.device.local_spec import LocalSpec
from fedrule.device.local_train import LocalResult, cohort_reply
from fedrule.device.update import CohortUpdate, DeviceDeltas, UpdatePipeline
from fedrule.model.codecs.composed import ComposedTable, plain_layout
from fedrule.model.objective import Objective, objective_step


@dataclass(frozen=True)
class _ParamPlan:
    """Private parameter rows (one per device and row it uses) and, per step, the distinct ones
    it touches (``step_params[param_bounds[t]:param_bounds[t + 1]]``) with, per factor, the
    position of each of the step's item rows among them (factors x the step's item rows)."""

    param_dev: np.ndarray
    param_row: np.ndarray
    step_params: torch.Tensor
    param_bounds: np.ndarray
    where: torch.Tensor


def _param_plan(
    parts: tuple[np.ndarray, ...],
    rows: int,
    row_dev: np.ndarray,
    row_item: np.ndarray,
    step_rows: np.ndarray,
    row_bounds: np.ndarray,
    steps: int,
) -> _ParamPlan:
    keys = np.stack([row_dev * rows + part[row_item] for part in parts])  # factors x item rows
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(keys.shape)
    step_of_entry = np.repeat(np.arange(steps), np.diff(row_bounds))[None, :]
    params, bounds, where = step_segments(step_of_entry, inverse[:, step_rows], uniq.size, steps)
    return _ParamPlan(
        param_dev=uniq // rows,
        param_row=uniq % rows,
        step_params=torch.from_numpy(params),
        param_bounds=bounds,
        where=torch.from_numpy(np.ascontiguousarray(where)),
    )


def local_train_composed(
    received: ComposedTable,
    user_vecs: torch.Tensor,
    train: Rows,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
) -> LocalResult:
    """Run ``spec.epochs`` local epochs of plain BPR on every device's copy of the parameter
    rows; return each device's update of those rows (``row_item``: parameter row ids, not yet
    summed with anyone's) and the devices' new user vectors."""
    n_items, dim = received.n_items, received.dim
    if spec.sampling != "none" or spec.lambda_div:
        raise ValueError("compressed tables train plain BPR: no sub-configurations or diversity")
    layout = plain_layout(n_items, dim)
    plan = plan_cohort(train, None, layout, spec, rngs, n_items)
    if plan is None:
        return LocalResult(DeviceDeltas.empty(train.counts, dim, 1), 0.0, 0.0, user_vecs)
    rows = int(received.table.shape[0])
    params = _param_plan(
        received.parts,
        rows,
        plan.row_dev,
        plan.row_item,
        plan.step_rows.numpy(),
        plan.row_bounds,
        plan.steps,
    )
    local = received.table.index_select(0, torch.from_numpy(params.param_row))
    users = user_vecs.clone()
    optimizer = make_local_optimizer(
        spec, local, users, torch.from_numpy(params.param_dev), None, params.step_params
    )
    objective = Objective(1, spec.l2, 0.0, spec.compiled)
    loss_sum = torch.zeros(())
    loss_count = 0
    for t in range(plan.steps):
        pairs = slice(plan.bounds[t], plan.bounds[t + 1])
        entries = slice(plan.row_bounds[t], plan.row_bounds[t + 1])
        touched = params.step_params[params.param_bounds[t] : params.param_bounds[t + 1]]
        active = plan.step_devs[plan.dev_bounds[t] : plan.dev_bounds[t + 1]]
        values = local.index_select(0, touched)
        where = params.where[:, entries]
        factors = [values.index_select(0, w) for w in where]
        items = factors[0]
        for factor in factors[1:]:
            items = items * factor
        res = objective_step(
            objective,
            users.index_select(0, active),
            items,
            plan.pair_dev[pairs],
            plan.pos_local[pairs],
            plan.neg_local[pairs],
            pair_weight=plan.pair_weight[pairs],
        )
        grad = torch.zeros_like(values)
        for k, w in enumerate(where):  # d(prod)/d(factor k) = the product of the others
            others = res.grad_items
            for j, factor in enumerate(factors):
                if j != k:
                    others = others * factor
            grad.index_add_(0, w, others)
        loss_sum += res.bpr
        loss_count += active.numel()
        optimizer.step(touched, grad, active, res.grad_users)
    deltas = DeviceDeltas(
        row_device=params.param_dev,
        row_item=params.param_row,
        delta=local.sub_(
            received.table.index_select(0, torch.from_numpy(params.param_row))
        ).numpy(),
        kept=np.ones((params.param_dev.size, 1), np.float32),
        weight=train.counts.astype(np.float64),
    )
    return LocalResult(deltas, float(loss_sum), float(loss_count), users)


def train_composed_cohort(
    received: ComposedTable,
    user_vecs: torch.Tensor,
    train: Rows,
    spec: LocalSpec,
    rngs: list[np.random.Generator],
    pipeline: UpdatePipeline | None = None,
) -> tuple[CohortUpdate, torch.Tensor]:
    """Local training, the per-device update pipeline, then the cohort's weighted sum per
    parameter row (what a node sends back)."""
    result = local_train_composed(received, user_vecs, train, spec, rngs)
    return cohort_reply(result, pipeline, rngs, received.dim * received.bytes_per_value)
