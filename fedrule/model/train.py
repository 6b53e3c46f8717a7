"""Centralised training of (elastic) BPR-MF: no federation.

With ``sampling: none`` and ``lambda_div: 0`` this is plain BPR-MF, the reference every
compressed and federated variant is compared with. Otherwise each step also trains sampled
sub-configurations of the elastic item table (the RULE supernet) and penalises similar blocks.
A step's loss and gradients come from ``fedrule.model.objective`` (the devices' objective too);
a torch optimizer applies them. Early stopping on the validation metric keeps the best epoch's
weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrule import killpoints
from fedrule.data.split import SplitData
from fedrule.errors import FedruleError
from fedrule.metrics import MetricSums
from fedrule.model.elastic import ElasticLayout
from fedrule.model.evaluate import evaluate_ranking, evaluate_ranking_users
from fedrule.model.mf import ElasticMF, configured_scores
from fedrule.model.negatives import NegativeSampler, popularity_weights
from fedrule.model.objective import ConfigWeights, Objective, StepResult, objective_step
from fedrule.model.supernet import sample_subconfigs
from fedrule.scenario.schema import EvalConfig, TrainConfig

EpochCallback = Callable[[dict], None]


@dataclass
class TrainResult:
    model: ElasticMF
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: float = float("nan")
    seconds: float = 0.0


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        try:  # the fused kernel (one pass over the parameters) where this torch has it on CPU
            return torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:
            return torch.optim.Adam(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


def train_centralized(
    split: SplitData,
    layout: ElasticLayout,
    model: ElasticMF,
    train: TrainConfig,
    evaluation: EvalConfig,
    *,
    seed: int,
    item_is_head: torch.Tensor | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` on ``split.train``, early-stopping on the validation metric."""
    rng = np.random.default_rng(seed)
    torch_gen = torch.Generator().manual_seed(seed)
    users = np.repeat(np.arange(split.n_users), np.diff(split.train.indptr)).astype(np.int64)
    items = np.asarray(split.train.items, dtype=np.int64)
    weights = popularity_weights(split.item_popularity(), train.negative_exponent)
    sampler = NegativeSampler(users, items, split.n_items, weights=weights)
    objective = Objective(model.num_blocks, train.l2, train.lambda_div, train.compile)
    optimizer = make_optimizer(train.optimizer, [model.user, model.item], train.lr)
    result = TrainResult(model=model)
    best_state = copy.deepcopy(model.state_dict())
    evaluations_without_gain = 0
    started = time.perf_counter()
    for epoch in range(1, train.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(users.size, generator=torch_gen).numpy()
        u_all = torch.from_numpy(users[order])
        i_all = torch.from_numpy(items[order])
        j_all = torch.from_numpy(sampler.sample(users[order], rng, train.negatives))
        steps = -(-users.size // train.batch_size)
        configs = sample_subconfigs(layout, train.sampling, rng, steps)
        losses = []
        model.train()
        for step in range(steps):
            batch = slice(step * train.batch_size, (step + 1) * train.batch_size)
            res = batch_gradients(
                model, layout, objective, u_all[batch], i_all[batch], j_all[batch], configs[step]
            )
            model.user.grad, model.item.grad = res.grad_users, res.grad_items
            optimizer.step()
            losses.append(float(res.loss))
            check_finite(losses[-1], epoch)
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "seconds": time.perf_counter() - epoch_start,
        }
        if epoch % train.eval_every == 0 or epoch == train.epochs:
            valid = evaluate_full(model, split, "valid", evaluation, item_is_head, head=False)
            score = valid.means()[evaluation.metric]
            record[f"valid_{evaluation.metric}"] = score
            if not score <= result.best_valid:  # also true for the first (NaN best)
                result.best_valid, result.best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
                evaluations_without_gain = 0
            else:
                evaluations_without_gain += 1
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        killpoints.reached("epoch")
        if train.patience and evaluations_without_gain >= train.patience:
            break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def check_finite(loss: float, epoch: int) -> None:
    """A step's loss that is not finite ends training with a one-line error."""
    if not np.isfinite(loss):
        raise FedruleError(
            f"training diverged in epoch {epoch} (loss is not finite)",
            path="train.lr",
            hint="lower the learning rate",
        )


def batch_gradients(
    model: ElasticMF,
    layout: ElasticLayout,
    objective: Objective,
    u: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    configs: np.ndarray,
) -> StepResult:
    """Objective and gradients (dense, over all users and items) of one batch: users ``u``,
    positives ``i``, negatives ``j`` (P x K), trained under the full configuration and the
    sub-configurations ``configs`` (S x G x B)."""
    weights = None
    if configs.shape[0]:
        group = layout.group_index
        table = layout.group_weights(configs).transpose(0, 1).contiguous()  # G x S x B
        weights = ConfigWeights(table, group[i], group[j])
    return objective_step(
        objective, model.user.detach(), model.item.detach(), u, i, j, configs=weights
    )


def evaluate_full(
    model: ElasticMF,
    split: SplitData,
    target: str,
    evaluation: EvalConfig,
    item_is_head: torch.Tensor | None,
    *,
    head: bool = True,
    item_weights: torch.Tensor | None = None,
) -> MetricSums:
    """Full-ranking metrics of ``model`` (optionally under a configuration's item weights)."""
    return evaluate_ranking(
        _scorer(model, item_weights),
        split,
        target=target,
        ks=evaluation.ks,
        item_is_head=item_is_head if head else None,
        batch_users=evaluation.batch_users,
    )


def evaluate_full_users(
    model: ElasticMF,
    split: SplitData,
    target: str,
    evaluation: EvalConfig,
    item_is_head: torch.Tensor | None,
    *,
    item_weights: torch.Tensor | None = None,
) -> tuple[MetricSums, np.ndarray]:
    """``evaluate_full``'s sums and, from the same ranking, ``evaluation.metric`` of every user
    (NaN without a ``target`` item): what a paired comparison with a fleet's devices needs."""
    sums, values = evaluate_ranking_users(
        _scorer(model, item_weights),
        split,
        target=target,
        ks=evaluation.ks,
        item_is_head=item_is_head,
        key=evaluation.metric,
        batch_users=evaluation.batch_users,
    )
    return sums, values


def _scorer(
    model: ElasticMF, item_weights: torch.Tensor | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Scores of every item for a batch of users (the model switched to evaluation)."""
    model.eval()
    table, users = model.item.detach(), model.user.detach()
    return lambda rows: configured_scores(users[rows], table, item_weights)
