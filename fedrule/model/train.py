"""Centralised training of (elastic) BPR-MF: plain PyTorch, no federation.

With ``sampling: none`` and ``lambda_div: 0`` this is plain BPR-MF, the reference every
compressed and federated variant is compared with. Otherwise each step also trains sampled
sub-configurations of the elastic item table (the RULE supernet) and penalises similar blocks.
Early stopping on the validation metric keeps the best epoch's weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrule.errors import FedruleError
from fedrule.metrics import MetricSums
from fedrule.model.elastic import ElasticLayout
from fedrule.model.evaluate import evaluate_ranking
from fedrule.model.mf import (
    ElasticMF,
    block_scores,
    bpr_loss,
    configured_scores,
    diversity_penalty,
)
from fedrule.model.negatives import NegativeSampler
from fedrule.model.supernet import elastic_bpr_loss, sample_subconfigs
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
        return torch.optim.Adam(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


def train_centralized(
    split: object,
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
    sampler = NegativeSampler(users, items, split.n_items)
    group_index = layout.group_index
    optimizer = make_optimizer(train.optimizer, [model.user, model.item], train.lr)
    result = TrainResult(model=model)
    best_state = copy.deepcopy(model.state_dict())
    evaluations_without_gain = 0
    started = time.perf_counter()
    for epoch in range(1, train.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(users.size, generator=torch_gen).numpy()
        negatives = sampler.sample(users[order], rng, train.negatives)
        losses = []
        model.train()
        for lo in range(0, users.size, train.batch_size):
            idx = order[lo : lo + train.batch_size]
            u = torch.from_numpy(users[idx])
            i = torch.from_numpy(items[idx])
            j = torch.from_numpy(negatives[lo : lo + train.batch_size])
            loss = step_loss(model, layout, group_index, u, i, j, train, rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if not np.isfinite(losses[-1]):
                raise FedruleError(
                    f"training diverged in epoch {epoch} (loss is not finite)",
                    path="train.lr",
                    hint="lower the learning rate",
                )
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
        if train.patience and evaluations_without_gain >= train.patience:
            break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def step_loss(
    model: ElasticMF,
    layout: ElasticLayout,
    group_index: torch.Tensor,
    u: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    train: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor:
    """BPR over full + sampled configurations, L2 on the batch, block-diversity penalty."""
    user_vecs = model.user[u]
    pos_vecs = model.item[i]
    neg_vecs = model.item[j]
    nb = model.num_blocks
    subs = [layout.group_weights(c) for c in sample_subconfigs(layout, train.sampling, rng)]
    if subs:
        pos_blocks = block_scores(user_vecs, pos_vecs, nb)
        neg_blocks = block_scores(user_vecs[:, None, :].expand_as(neg_vecs), neg_vecs, nb)
        loss = elastic_bpr_loss(pos_blocks, neg_blocks, group_index[i], group_index[j], None, subs)
    else:  # plain BPR-MF: whole dot products are cheaper than per-block partial sums
        pos = (user_vecs * pos_vecs).sum(-1)
        neg = torch.bmm(neg_vecs, user_vecs[:, :, None]).squeeze(-1)
        loss = bpr_loss(pos, neg)
    if train.l2:
        loss = (
            loss
            + train.l2
            * (user_vecs.pow(2).sum() + pos_vecs.pow(2).sum() + neg_vecs.pow(2).sum())
            / u.numel()
        )
    if train.lambda_div:
        batch_items = torch.cat([pos_vecs, neg_vecs.reshape(-1, neg_vecs.shape[-1])])
        loss = loss + train.lambda_div * diversity_penalty(batch_items, nb)
    return loss


def evaluate_full(
    model: ElasticMF,
    split: object,
    target: str,
    evaluation: EvalConfig,
    item_is_head: torch.Tensor | None,
    *,
    head: bool = True,
    item_weights: torch.Tensor | None = None,
) -> MetricSums:
    """Full-ranking metrics of ``model`` (optionally under a configuration's item weights)."""
    model.eval()
    table, users = model.item.detach(), model.user.detach()
    return evaluate_ranking(
        lambda rows: configured_scores(users[rows], table, item_weights),
        split,
        target=target,
        ks=evaluation.ks,
        item_is_head=item_is_head if head else None,
        batch_users=evaluation.batch_users,
    )
