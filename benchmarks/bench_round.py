"""Seconds of one federated training round with every device of the dataset, without Flower.

Calls ``fedrule.device.local_train.train_cohort`` directly on cohorts of at most ``--cohort``
devices (the scenario's ``engine.devices_per_node`` by default), packed as the engine packs them
(``fedrule.algorithm.packing.pack``: runs of devices of similar size), or with ``--spread`` as
secure aggregation packs them (cohorts of similar sizes), with the scenario's local training
(``scenarios/ml1m-fleet.yaml``: 2 negatives, sandwich sampling, lambda_div 0.01, batch 32,
row-wise Adam).
Prints figures measured in one run (it is not a timed test). Usage:
    python benchmarks/bench_round.py [--scenario scenarios/ml1m-fleet.yaml] [--cohort 128]
        [--compile]  (``train.compile: true``; the first round, compiling, is not timed)
        [--repeat 3]  (the best of this many rounds is shown: this machine's timings are noisy)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from fedrule.algorithm.packing import num_cohorts, pack, spread
from fedrule.device.cohort import gather_rows
from fedrule.device.local_train import train_cohort
from fedrule.engine.federated import local_spec
from fedrule.engine.prepare import prepare_split
from fedrule.engine.training import build_layout
from fedrule.fleet import device_rng
from fedrule.scenario import load_scenario
from fedrule.scenario.schema import Scenario
from fedrule.seeds import STREAM_TRAIN


def round_seconds(
    split: object, scenario: Scenario, cohort: int, round_number: int = 1, similar: bool = True
) -> float:
    """One round of every device, cohort after cohort; returns its seconds."""
    layout = build_layout(scenario.model, split.item_popularity())
    spec = local_spec(scenario)
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(split.n_items, scenario.model.dim, generator=gen) * 0.1
    users = torch.randn(split.n_users, scenario.model.dim, generator=gen) * 0.1
    cost = np.diff(split.train.indptr).astype(np.float64)
    everyone = np.arange(split.n_users)
    count = num_cohorts(split.n_users, 2, scenario.engine.messages_per_worker, cohort)
    if similar:
        cohorts = pack(everyone, cost, count, cohort)
    else:
        cohorts = spread(everyone, cost, count, cohort)
    started = time.perf_counter()
    for devices in cohorts:
        rows = gather_rows(split.train.indptr, split.train.items, devices)
        rngs = [device_rng(0, int(d), round_number, STREAM_TRAIN) for d in devices]
        train_cohort(table, users[devices], rows, None, layout, spec, rngs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="scenarios/ml1m-fleet.yaml")
    parser.add_argument("--cohort", type=int, nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="train.compile: true (2 rounds)")
    parser.add_argument("--spread", action="store_true", help="cohorts of similar sizes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds timed; the best is shown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = load_scenario(args.scenario)
    split = prepare_split(scenario.data, 0)
    print(f"{scenario.data.source}: {split.n_users} devices, {split.train.nnz} train interactions")
    if args.compile:
        scenario = replace(scenario, train=replace(scenario.train, compile=True))
    for cohort in args.cohort or [scenario.engine.devices_per_node]:
        similar = not args.spread
        first = 1
        if args.compile:  # the first round includes compilation
            round_seconds(split, scenario, cohort, similar=similar)
            first = 2
        seconds = min(
            round_seconds(split, scenario, cohort, round_number=first + r, similar=similar)
            for r in range(args.repeat)
        )
        print(f"round of all {split.n_users} devices, cohorts of {cohort:5d}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
