"""Training-epoch throughput and full-evaluation time on a real dataset (default ML-1M).

Prints figures measured in one run; it is not a timed test. Usage:
    python benchmarks/bench_centralized.py [--dataset ml-1m] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from fedrule.engine.centralized import build_layout, item_heads
from fedrule.engine.prepare import prepare_split
from fedrule.model.mf import ElasticMF
from fedrule.model.train import evaluate_full, train_centralized
from fedrule.scenario import scenario_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    split = prepare_split(scenario_from_dict({"data": {"source": args.dataset}}).data, 0)
    load_seconds = time.perf_counter() - started
    print(f"{args.dataset}: {split.n_users} users, {split.n_items} items, {split.train.nnz} train")
    print(f"load + split: {load_seconds:.2f} s   threads: {args.threads}")
    for sampling, lambda_div in (("none", 0.0), ("sandwich", 0.01)):
        scenario = scenario_from_dict(
            {
                "train": {
                    "epochs": args.epochs,
                    "eval_every": 10**6,
                    "sampling": sampling,
                    "lambda_div": lambda_div,
                }
            }
        )
        layout = build_layout(scenario.model, split.item_popularity())
        model = ElasticMF(split.n_users, split.n_items, 64, scenario.model.blocks, 0.1, 0)
        result = train_centralized(split, layout, model, scenario.train, scenario.eval, seed=0)
        per_epoch = [r["seconds"] for r in result.history]
        rate = split.train.nnz / min(per_epoch)
        print(
            f"train epoch ({sampling:8s}): best {min(per_epoch):.2f} s "
            f"= {rate / 1e6:.2f} M interactions/s"
        )
    is_head = item_heads(split, scenario.eval.head_share)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        evaluate_full(model, split, "test", scenario.eval, is_head)
        times.append(time.perf_counter() - started)
    print(
        f"full-ranking test evaluation (all users x all items, K={scenario.eval.ks}): "
        f"best {min(times):.3f} s of 3"
    )


if __name__ == "__main__":
    main()
