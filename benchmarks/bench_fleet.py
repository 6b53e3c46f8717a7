"""Seconds per federated training round: one Flower node per device versus cohorts.

Runs real fleets (Flower simulation on Ray) and prints, from one run of this script:
  * 1,000 devices per round with 1 device per node vs the cohort default, and their ratio;
  * a round with all devices of the dataset (ML-1M: 6,040) in it.
Usage: python benchmarks/bench_fleet.py [--dataset ml-1m] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time

from fedrule.report.run import run_scenario
from fedrule.scenario import scenario_from_dict


def round_seconds(raw: dict, out: str) -> tuple[float, float]:
    started = time.perf_counter()
    folder = run_scenario(scenario_from_dict(raw), out)
    total = time.perf_counter() - started
    with open(folder / "rounds-seed0.csv") as fh:
        seconds = sorted(float(r["seconds"]) for r in csv.DictReader(fh))
    return seconds[len(seconds) // 2], total


def scenario(dataset: str, devices: int, per_round: float, per_node: int, rounds: int) -> dict:
    return {
        "name": f"bench-{per_node}",
        "data": {"source": dataset},
        "train": {"sampling": "sandwich", "lambda_div": 0.01, "negatives": 1},
        "estimator": {"configs": 10, "epochs": 5, "label_users": 16},
        "search": {"cycles": 5},
        "engine": {"kind": "federated", "devices_per_node": per_node},
        "fleet": {
            "num_devices": devices,
            "tiers": [
                {"name": "small", "share": 0.5, "budget": "1/8"},
                {"name": "large", "share": 0.5, "budget": 1},
            ],
        },
        "federated": {"rounds": rounds, "devices_per_round": per_round},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--cohort", type=int, default=64, help="devices per node (the default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        single, single_total = round_seconds(
            scenario(args.dataset, args.devices, 1.0, 1, args.rounds), out
        )
        cohort, cohort_total = round_seconds(
            scenario(args.dataset, args.devices, 1.0, args.cohort, args.rounds), out
        )
        print(f"{args.devices} devices per round, median seconds per training round:")
        print(f"  1 device per node:        {single:8.2f} s   (whole run {single_total:.0f} s)")
        label = f"{args.cohort} devices per node:"
        print(f"  {label:26s}{cohort:8.2f} s   (whole run {cohort_total:.0f} s)")
        print(f"  cohorts are {single / cohort:.1f}x faster per round")
        everyone, total = round_seconds(
            scenario(args.dataset, 0, 1.0, args.cohort, args.rounds), out
        )
        print(
            f"every device of {args.dataset} in the round: {everyone:.2f} s per round "
            f"(whole run {total:.0f} s)"
        )


if __name__ == "__main__":
    main()
