"""Centralised BPR training of a compressed item table (hashing, quotient-remainder).

The model is an MF whose item embeddings are computed from a parameter table by the codec
(``embed``: a hashed row, a product of a quotient and a remainder row). Each step gathers the
embeddings of the batch's distinct items, takes the objective and its gradients from
``fedrule.model.objective`` (the plain model's: BPR with the same sampled negatives, L2 on the
embeddings used) and maps the item gradients back onto the table (``embed_grad``). With the same
seed, the order of pairs and the negatives are those of ``fedrule.model.train`` for plain BPR-MF;
epochs, optimizer and early stopping on the validation metric are the same too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from fedrule.data.split import SplitData
from fedrule.model.evaluate import evaluate_ranking
from fedrule.model.negatives import NegativeSampler, popularity_weights
from fedrule.model.objective import Objective, objective_step
from fedrule.model.train import check_finite, make_optimizer
from fedrule.scenario.schema import EvalConfig, TrainConfig


class TrainableCodec(Protocol):
    """What the trainer needs of a codec: its parameter table and how items embed from it."""

    @property
    def table_shape(self) -> tuple[int, int]: ...

    def init_table(self, init_std: float, generator: torch.Generator) -> torch.Tensor: ...

    def embed(self, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...

    def embed_grad(
        self, table: torch.Tensor, items: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor: ...

    def item_table(self, table: torch.Tensor) -> torch.Tensor: ...


@dataclass
class CodecTrainResult:
    """The trained user vectors (n_users x d) and parameter table, as of the best epoch."""

    user: torch.Tensor
    table: torch.Tensor
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: float = float("nan")
    seconds: float = 0.0


def train_codec(
    split: SplitData,
    codec: TrainableCodec,
    dim: int,
    init_std: float,
    train: TrainConfig,
    evaluation: EvalConfig,
    *,
    seed: int,
    on_epoch: Callable[[dict], None] | None = None,
) -> CodecTrainResult:
    """Train user vectors and ``codec``'s table on ``split.train``, early-stopping on validation."""
    generator = torch.Generator().manual_seed(seed)
    user = torch.nn.Parameter(torch.randn(split.n_users, dim, generator=generator) * init_std)
    table = torch.nn.Parameter(codec.init_table(init_std, generator))
    rng = np.random.default_rng(seed)
    torch_gen = torch.Generator().manual_seed(seed)
    users = np.repeat(np.arange(split.n_users), np.diff(split.train.indptr)).astype(np.int64)
    items = np.asarray(split.train.items, dtype=np.int64)
    weights = popularity_weights(split.item_popularity(), train.negative_exponent)
    sampler = NegativeSampler(users, items, split.n_items, weights=weights)
    objective = Objective(num_blocks=1, l2=train.l2)
    optimizer = make_optimizer(train.optimizer, [user, table], train.lr)
    result = CodecTrainResult(user=user.detach().clone(), table=table.detach().clone())
    evaluations_without_gain = 0
    started = time.perf_counter()
    for epoch in range(1, train.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(users.size, generator=torch_gen).numpy()
        u_all = torch.from_numpy(users[order])
        i_all = torch.from_numpy(items[order])
        j_all = torch.from_numpy(sampler.sample(users[order], rng, train.negatives))
        losses = []
        for start in range(0, users.size, train.batch_size):
            batch = slice(start, start + train.batch_size)
            loss = _step(codec, objective, user, table, u_all[batch], i_all[batch], j_all[batch])
            optimizer.step()
            losses.append(loss)
            check_finite(loss, epoch)
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "seconds": time.perf_counter() - epoch_start,
        }
        if epoch % train.eval_every == 0 or epoch == train.epochs:
            valid = _validate(codec, user.detach(), table.detach(), split, evaluation)
            record[f"valid_{evaluation.metric}"] = valid
            if not valid <= result.best_valid:  # also true for the first (NaN best)
                result.best_valid, result.best_epoch = valid, epoch
                result.user, result.table = user.detach().clone(), table.detach().clone()
                evaluations_without_gain = 0
            else:
                evaluations_without_gain += 1
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if train.patience and evaluations_without_gain >= train.patience:
            break
    result.seconds = time.perf_counter() - started
    return result


def _step(
    codec: TrainableCodec,
    objective: Objective,
    user: torch.nn.Parameter,
    table: torch.nn.Parameter,
    u: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
) -> float:
    """Set the gradients of one batch (positives ``i``, negatives ``j``: P x K); its loss."""
    distinct, where = torch.unique(torch.cat([i, j.reshape(-1)]), return_inverse=True)
    pos, neg = where[: i.numel()], where[i.numel() :].view(j.shape)
    rows = codec.embed(table.detach(), distinct)
    res = objective_step(objective, user.detach(), rows, u, pos, neg)
    user.grad = res.grad_users
    table.grad = codec.embed_grad(table.detach(), distinct, res.grad_items)
    return float(res.loss)


def _validate(
    codec: TrainableCodec,
    user: torch.Tensor,
    table: torch.Tensor,
    split: SplitData,
    evaluation: EvalConfig,
) -> float:
    """The model-selection metric on validation."""
    items = codec.item_table(table)
    sums = evaluate_ranking(
        lambda rows: user[rows] @ items.T,
        split,
        target="valid",
        ks=evaluation.ks,
        item_is_head=None,
        batch_users=evaluation.batch_users,
    )
    return sums.means()[evaluation.metric]
