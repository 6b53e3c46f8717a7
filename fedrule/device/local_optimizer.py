"""A device's own optimizer over its private item rows and user vector, batched over a cohort.

``federated.local_optimizer`` names a ``LocalOptimizer`` class registered in
``fedrule.registry.LOCAL_OPTIMIZERS``: fedrule's own (``adam``, ``rowwise-adam``, ``sgd``) are
registered here; a package adds one through an entry point of the group
``fedrule.local_optimizers``, with its options in ``federated.local_optimizer_options``. The
worker that trains a cohort builds it by name (``make_local_optimizer``), so a Ray worker finds a
plug-in through its entry point.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch

from fedrule.device.local_spec import LocalSpec
from fedrule.registry import LOCAL_OPTIMIZERS
from fedrule.scenario.validate import options_from

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # the devices' Adam


class LocalOptimizer:
    """Each device's own optimizer over its private rows and user vector, batched.

    ``local`` holds the cohort's private item rows (one per device and row it touches, owned by
    device ``row_dev[r]``), ``users`` its devices' user vectors; ``row_mask`` (None: all) the
    entries a device may train. ``touches`` (every step's rows, step after step) says which
    rows get a gradient more than once. A subclass says how rows and user vectors step
    (``step_rows``, ``step_users``), in place; ``settings`` is an instance of its ``options``
    dataclass (``federated.local_optimizer_options``; None: it takes none). State starts fresh
    every round, as a new local optimizer on a device would. Nothing in a step may mix two
    devices.
    """

    options: ClassVar[type | None] = None  # its options dataclass

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
        self.row_dev, self.row_mask, self.touches = row_dev, row_mask, touches
        self.settings: Any = options_from(self, json.loads(spec.optimizer_options))
        self.start()

    def start(self) -> None:
        """Set up the optimizer's state (fresh every round): none for plain SGD."""

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
            self.step_rows(rows, grad_rows, mask)
        self.step_users(active, grad_users)

    def step_rows(self, rows: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Step the (distinct) private ``rows`` by their gradient (masked already)."""
        raise NotImplementedError

    def step_users(self, active: torch.Tensor, grad: torch.Tensor) -> None:
        """Step the user vectors of the ``active`` devices."""
        raise NotImplementedError


class SGD(LocalOptimizer):
    """Plain SGD."""

    def step_rows(self, rows: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> None:
        self.local.index_add_(0, rows, grad, alpha=-self.spec.lr)

    def step_users(self, active: torch.Tensor, grad: torch.Tensor) -> None:
        self.users.index_add_(0, active, grad, alpha=-self.spec.lr)


class LazyAdam(LocalOptimizer):
    """Lazy Adam (as ``torch.optim.SparseAdam``): a device's rows are updated at the steps where
    they get a gradient, with the device's own step count for bias correction; its user vector
    gets a gradient at every step of the device.

    Only rows that ``touches`` names more than once keep Adam moments. A row stepped once (most
    sampled negatives) has zero moments before its step and none after, so its update is Adam's
    first step in closed form.
    """

    rowwise: ClassVar[bool] = False  # one second moment per item row (RowwiseAdam)

    def start(self) -> None:
        local, users = self.local, self.users
        again = torch.bincount(self.touches, minlength=local.shape[0]) > 1
        self.state_of = torch.cumsum(again, 0).sub_(1).masked_fill_(~again, -1)
        stateful = int(again.sum())
        self.m_rows = local.new_zeros(stateful, local.shape[1])
        self.v_rows = local.new_zeros(stateful, 1 if self.rowwise else local.shape[1])
        self.m_users = torch.zeros_like(users)
        self.v_users = torch.zeros_like(users)
        self.steps = torch.zeros(users.shape[0])

    def step_rows(self, rows: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor | None) -> None:
        # each row with its owning device's step count
        step = self.steps.index_select(0, self.row_dev.index_select(0, rows)) + 1
        update = self._row_update(rows, grad, step, mask)
        if mask is not None:
            update = update.mul_(mask)
        # distinct rows: gather, subtract, scatter back (bit for bit index_add_'s result,
        # and several times faster on CPU than index_add_, which serialises its writes)
        self.local.index_copy_(0, rows, self.local.index_select(0, rows).sub_(update))

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

    def step_users(self, active: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps.index_add_(0, active, torch.ones(active.numel()))
        step = self.steps.index_select(0, active)
        # entry-wise either way; rowwise-adam adds the square it computed (its studies' last
        # bits), adam keeps torch's addcmul (the earlier studies' last bits)
        square = grad.square() if self.rowwise else None
        moments = _adam_moments(self.m_users, self.v_users, active, grad, square)
        update = _adam_update(*moments, step, self.spec.lr)
        self.users.index_copy_(0, active, self.users.index_select(0, active).sub_(update))


class RowwiseAdam(LazyAdam):
    """Lazy Adam with one second moment per item row, the mean of its squared gradient entries
    over the entries the device may train (as in row-wise Adagrad for embedding tables,
    FBGEMM): an entry-wise first step is lr * sign(g) on every entry a device touched, while a
    row-wise step keeps the entries' relative sizes, so blocks that few sub-configurations use
    move little. The user vector stays entry-wise."""

    rowwise = True


def make_local_optimizer(spec: LocalSpec, *rows: torch.Tensor | None) -> LocalOptimizer:
    """The optimizer ``spec.optimizer`` names over a cohort's ``rows`` (``LocalOptimizer``'s
    arguments after the spec: local rows, user vectors, row owners, row mask, touches)."""
    return LOCAL_OPTIMIZERS.get(spec.optimizer)(spec, *rows)


for _name, _kind in (("adam", LazyAdam), ("rowwise-adam", RowwiseAdam), ("sgd", SGD)):
    LOCAL_OPTIMIZERS.register(_name, _kind)


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
