"""Centralised training-epoch time against a plain PyTorch BPR loop, and full-evaluation time.

Prints figures measured in one run (it is not a timed test):
  * a plain ~30-line PyTorch BPR-MF loop (1 negative, batch 4096, Adam), seconds per epoch;
  * fedrule's plain epoch (1 uniform negative, ``sampling: none``, no diversity term, same
    batch size) and its ratio to the plain loop. The two take turns, one epoch each, for
    ``--trials`` turns, so that a slow spell of the machine slows both: the best epoch of each
    and the median of the turns' ratios are shown;
  * fedrule's epoch with the loss of ``scenarios/ml1m-fleet.yaml`` (its model and train keys:
    32 blocks, 16 groups, 2 negatives by sqrt(popularity), sandwich sampling, lambda_div 0.01);
  * full-ranking test evaluation.
Usage:
    python benchmarks/bench_centralized.py [--scenario scenarios/ml1m-fleet.yaml] [--epochs 2]
        [--trials 5]  (turns of the plain loop and fedrule's plain epoch)
        [--compile]  (also the epochs with ``train.compile: true``, compilation excluded)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from fedrule.engine.prepare import prepare_split
from fedrule.engine.training import build_layout, item_heads
from fedrule.model.mf import ElasticMF
from fedrule.model.train import evaluate_full, train_centralized
from fedrule.scenario import load_scenario
from fedrule.scenario.schema import Scenario


def plain_bpr_epochs(split: object, train: object, epochs: int, seed: int = 0) -> list[float]:
    """Seconds per epoch of a plain PyTorch BPR-MF loop (the reference of the ratio)."""
    torch.manual_seed(seed)
    users = torch.from_numpy(np.repeat(np.arange(split.n_users), np.diff(split.train.indptr)))
    items = torch.from_numpy(np.asarray(split.train.items, dtype=np.int64))
    user_emb = torch.nn.Embedding(split.n_users, 64)
    item_emb = torch.nn.Embedding(split.n_items, 64)
    torch.nn.init.normal_(user_emb.weight, std=0.1)
    torch.nn.init.normal_(item_emb.weight, std=0.1)
    optimizer = torch.optim.Adam([user_emb.weight, item_emb.weight], lr=train.lr)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(users.numel())
        negatives = torch.randint(0, split.n_items, (users.numel(),))
        for lo in range(0, users.numel(), train.batch_size):
            idx = order[lo : lo + train.batch_size]
            u, i = user_emb(users[idx]), item_emb(items[idx])
            j = item_emb(negatives[lo : lo + train.batch_size])
            loss = -torch.nn.functional.logsigmoid((u * (i - j)).sum(-1)).mean()
            if train.l2:
                norms = u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()
                loss = loss + train.l2 * norms / idx.numel()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
    return seconds


def fedrule_epochs(split: object, scenario: Scenario, epochs: int) -> list[float]:
    train = replace(scenario.train, epochs=epochs, eval_every=10**6, patience=0)
    layout = build_layout(scenario.model, split.item_popularity())
    model = ElasticMF(split.n_users, split.n_items, scenario.model.dim, layout.num_blocks, 0.1, 0)
    result = train_centralized(split, layout, model, train, scenario.eval, seed=0)
    return [r["seconds"] for r in result.history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="scenarios/ml1m-fleet.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=5, help="turns of the plain epochs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="also time train.compile: true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fleet = load_scenario(args.scenario)
    started = time.perf_counter()
    split = prepare_split(fleet.data, 0)
    print(f"{fleet.data.source}: {split.n_users} users, {split.n_items} items, {split.train.nnz}")
    print(f"load + split: {time.perf_counter() - started:.2f} s   threads: {args.threads}")
    plain_train = replace(
        fleet.train, negatives=1, negative_exponent=0.0, sampling="none", lambda_div=0.0
    )
    plain = replace(fleet, train=plain_train)
    references, ours = [], []
    for trial in range(max(args.trials, 1)):  # turns: a slow spell slows both sides
        references += plain_bpr_epochs(split, plain_train, 1, seed=trial)
        ours += fedrule_epochs(split, plain, 1)
    reference, ours_plain = min(references), min(ours)
    turn_ratio = float(np.median(np.asarray(ours) / np.asarray(references)))
    ours_fleet = min(fedrule_epochs(split, fleet, args.epochs))
    t = fleet.train
    compiled = []
    if args.compile:  # the first epoch includes compilation; the best of the rest is reported
        for scenario in (plain, fleet):
            on = replace(scenario, train=replace(scenario.train, compile=True))
            compiled.append(min(fedrule_epochs(split, on, max(args.epochs, 2))[1:]))
    print(f"plain PyTorch BPR loop epoch: {reference:6.2f} s")
    print(
        f"fedrule plain epoch:          {ours_plain:6.2f} s = {ours_plain / reference:.2f}x loop"
        f"   (best of {len(ours)} turns each; median of the turns' ratios {turn_ratio:.2f}x)"
    )
    print(
        f"fedrule fleet-loss epoch:     {ours_fleet:6.2f} s = {ours_fleet / reference:.2f}x loop"
        f"   ({t.negatives} negatives ^{t.negative_exponent}, {t.sampling}, "
        f"lambda_div {t.lambda_div}, "
        f"{fleet.model.blocks} blocks, {fleet.model.groups} groups)"
    )
    for name, seconds in zip(("plain", "fleet-loss"), compiled, strict=False):
        label = f"  compiled {name} epoch:"
        print(f"{label:30s}{seconds:6.2f} s = {seconds / reference:.2f}x loop")
    model = ElasticMF(split.n_users, split.n_items, fleet.model.dim, fleet.model.blocks, 0.1, 0)
    is_head = item_heads(split, fleet.eval.head_share)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        evaluate_full(model, split, "test", fleet.eval, is_head)
        times.append(time.perf_counter() - started)
    print(f"full-ranking test evaluation (K={fleet.eval.ks}): best {min(times):.3f} s of 3")


if __name__ == "__main__":
    main()
