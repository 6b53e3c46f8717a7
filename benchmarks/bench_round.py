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
        [--epochs 2]  (also the best of this many centralised epochs with the same loss, and the
                       ratio of a round to it: ``bench_centralized.py``'s fleet-loss epoch; 0: none)
        [--workers 2]  (also the round as the engine runs it: cohorts shared out to this many
                        worker processes of ``engine.cpus_per_node`` threads each, as Ray workers
                        take them; no Flower messages, no aggregation; each timed round takes
                        turns with a centralised epoch, and the best epoch of all is the
                        ratio's reference)
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import torch
from bench_centralized import fedrule_epochs

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


class _Round:
    """What every cohort of a round needs: the split, layout, local training and a random
    table and user vectors (the same in every process: seeded)."""

    def __init__(self, scenario: Scenario, split: object | None = None) -> None:
        self.scenario = scenario
        self.split = split if split is not None else prepare_split(scenario.data, 0)
        self.layout = build_layout(scenario.model, self.split.item_popularity())
        self.spec = local_spec(scenario)
        gen = torch.Generator().manual_seed(0)
        dim = scenario.model.dim
        self.table = torch.randn(self.split.n_items, dim, generator=gen) * 0.1
        self.users = torch.randn(self.split.n_users, dim, generator=gen) * 0.1

    def cohorts(self, cohort: int, similar: bool = True, workers: int = 2) -> list[np.ndarray]:
        """A round's cohorts as the engine packs them for ``workers`` Ray workers."""
        split = self.split
        cost = np.diff(split.train.indptr).astype(np.float64)
        everyone = np.arange(split.n_users)
        per_worker = self.scenario.engine.messages_per_worker
        count = num_cohorts(split.n_users, workers, per_worker, cohort)
        return (pack if similar else spread)(everyone, cost, count, cohort)

    def train(self, devices: np.ndarray, round_number: int) -> None:
        split = self.split
        rows = gather_rows(split.train.indptr, split.train.items, devices)
        rngs = [device_rng(0, int(d), round_number, STREAM_TRAIN) for d in devices]
        train_cohort(self.table, self.users[devices], rows, None, self.layout, self.spec, rngs)


def round_seconds(
    split: object, scenario: Scenario, cohort: int, round_number: int = 1, similar: bool = True
) -> float:
    """One round of every device, cohort after cohort; returns its seconds."""
    work = _Round(scenario, split)
    cohorts = work.cohorts(cohort, similar)
    started = time.perf_counter()
    for devices in cohorts:
        work.train(devices, round_number)
    return time.perf_counter() - started


_WORKER: _Round | None = None


def _start_worker(scenario: Scenario, threads: int) -> None:
    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = _Round(scenario)


def _train_in_worker(devices: np.ndarray, round_number: int) -> None:
    _WORKER.train(devices, round_number)


def worker_round_seconds(
    pool: ProcessPoolExecutor, work: _Round, cohort: int, round_number: int, workers: int
) -> float:
    """One round of every device, its cohorts shared out to the pool's workers in the engine's
    order (costly cohorts first); returns its seconds."""
    cohorts = work.cohorts(cohort, workers=workers)
    started = time.perf_counter()
    for done in [pool.submit(_train_in_worker, c, round_number) for c in cohorts]:
        done.result()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="scenarios/ml1m-fleet.yaml")
    parser.add_argument("--cohort", type=int, nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="train.compile: true (2 rounds)")
    parser.add_argument("--spread", action="store_true", help="cohorts of similar sizes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds timed; the best is shown")
    parser.add_argument("--workers", type=int, default=0, help="also in this many processes")
    parser.add_argument("--epochs", type=int, default=2, help="centralised epochs timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenario = load_scenario(args.scenario)
    split = prepare_split(scenario.data, 0)
    print(f"{scenario.data.source}: {split.n_users} devices, {split.train.nnz} train interactions")
    if args.compile:
        scenario = replace(scenario, train=replace(scenario.train, compile=True))
    epoch = min(fedrule_epochs(split, scenario, args.epochs)) if args.epochs else 0.0
    if epoch:
        print(
            f"centralised epoch with the same loss ({torch.get_num_threads()} threads): "
            f"{epoch:6.2f} s"
        )

    def ratio(seconds: float) -> str:
        return f" = {seconds / epoch:.2f}x epoch" if epoch else ""

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
        label = f"round of all {split.n_users} devices, cohorts of {cohort:5d}:"
        print(f"{label} {seconds:6.2f} s{ratio(seconds)}")
    if args.workers:
        threads = scenario.engine.cpus_per_node
        work = _Round(scenario, split)
        context = multiprocessing.get_context("spawn")
        start = {"initializer": _start_worker, "initargs": (scenario, threads)}
        with ProcessPoolExecutor(args.workers, mp_context=context, **start) as pool:
            per_node = scenario.engine.devices_per_node
            worker_round_seconds(pool, work, per_node, 1, args.workers)  # warm-up
            rounds, epochs = [], []
            for r in range(args.repeat):  # turns of a round and an epoch: a slow spell slows both
                rounds.append(worker_round_seconds(pool, work, per_node, 2 + r, args.workers))
                if args.epochs:
                    epochs += fedrule_epochs(split, scenario, 1)
        seconds = min(rounds)
        turns = ""
        if epochs:
            epoch = min(epoch, *epochs)
            turn_ratio = float(np.median(np.asarray(rounds) / np.asarray(epochs)))
            turns = (
                f" (best epoch of all {epoch:.2f} s; median of {len(rounds)} turns' ratios to "
                f"an epoch: {turn_ratio:.2f}x)"
            )
        print(
            f"round of all {split.n_users} devices in {args.workers} worker processes of "
            f"{threads} thread(s), cohorts of {scenario.engine.devices_per_node}: {seconds:6.2f} s"
            f"{ratio(seconds)}{turns}"
        )


if __name__ == "__main__":
    main()
