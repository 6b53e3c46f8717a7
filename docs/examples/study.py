"""A small study from Python: which server optimiser trains a tiny fleet best?

Runs every server optimiser fedrule has (a registered plug-in's name works as well) on one
synthetic fleet of three memory tiers (``scenarios/synthetic-100k.yaml`` shrunk by overrides),
for a few seeds, and prints each tier's test NDCG@20, mean and spread over the seeds; the run
folders stay under ``--out`` (``fedrule report`` reads them), and the table is written there as
``study.csv``.

    python docs/examples/study.py                     # about ten seconds on 2 cores
    python docs/examples/study.py --rounds 2 --seeds 0 --optimizers fedavg fedadam

Everything here is the public API: ``fedrule.load_scenario`` (a shipped file with overrides),
``fedrule.run`` (returns the published run folder read back) and the ``RunResult``'s records.
The in-process transport keeps it quick; ``engine.transport: flower`` gives the same numbers on
Flower and Ray.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import fedrule

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "synthetic-100k.yaml"
SMALL = {  # the shipped scale scenario's fleet of three tiers, shrunk to a fleet of 120 devices
    "data.synthetic.users": 120,
    "data.synthetic.items": 80,
    "data.synthetic.interactions_per_user": 15,
    "model.groups": 8,
    "engine.transport": "inprocess",
    "engine.devices_per_node": 64,
    "federated.method": "nested",
    "federated.devices_per_round": 0.5,
}
STEP = {"fedavg": 1.0, "fedavgm": 0.5, "fedadam": 0.05, "fedyogi": 0.05}  # server_lr each


def study(optimizers: list[str], seeds: list[int], rounds: int, out: Path) -> list[dict]:
    """One run per optimiser (all seeds in it); per optimiser and tier, the mean and spread of
    the test NDCG@20 over the seeds."""
    rows = []
    for name in optimizers:
        scenario = fedrule.load_scenario(
            SCENARIO,
            {
                **SMALL,
                "name": f"study-{name}",
                "seeds": seeds,
                "federated.rounds": rounds,
                "federated.server_optimizer": name,
                "federated.server_lr": STEP.get(name, 1.0),
            },
        )
        result = fedrule.run(scenario, out=out)
        for tier in result.tiers:  # the run's tiers.csv, at full precision
            rows.append(
                {
                    "optimizer": name,
                    "tier": tier["tier"],
                    "ndcg@20": tier["ndcg@20"],
                    "spread": tier["ndcg@20_std"] or 0.0,  # over seeds (one seed: none)
                    "bytes": tier["bytes_received_mean"],
                    "run": result.path.name,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", nargs="+", default=list(STEP))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    args = parser.parse_args(argv)
    rows = study(args.optimizers, args.seeds, args.rounds, args.out)
    print(f"{'optimizer':<10} {'tier':<6} {'ndcg@20':>8} {'± seeds':>8} {'bytes':>8}")
    for row in rows:
        cells = f"{row['ndcg@20']:8.4f} {row['spread']:8.4f} {row['bytes']:8.0f}"
        print(f"{row['optimizer']:<10} {row['tier']:<6} {cells}")
    with open(args.out / "study.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
