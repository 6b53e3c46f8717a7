"""How fast federated training gets there (``speed.csv``/``speed.md`` of ``fedrule report``).

For every federated group whose rounds were validated (``federated.eval_every``), per seed:
the best validation metric and its round, and the first validated round (and the training
seconds until its end, the rounds' ``seconds`` summed) at which validation reached
``SHARE`` of

- the seed's own best (``*_own``): how soon the run has most of what it will get;
- the best any group of the report reached on the same data, fleet, labelling devices and
  seed (``*_all``): how soon it has most of what the best setting gets. Such groups validate
  on the same users, so their curves compare point by point.

Each figure is a mean ± spread over the seeds that reached the share; ``reached_all`` counts
them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from fedrule.report.convergence import validation_points
from fedrule.report.runs import Group
from fedrule.report.tables import mean_std

SHARE = 0.95


def speed_columns(metric: str, share: float = SHARE) -> list[str]:
    pct = f"{100 * share:g}"
    columns = ["group", "seeds", f"best_valid_{metric}", f"best_valid_{metric}_std", "best_round"]
    for target in ("own", "all"):
        for unit in ("rounds", "seconds"):
            columns += [f"{unit}_to_{pct}_{target}", f"{unit}_to_{pct}_{target}_std"]
    return [*columns, "reached_all"]


def first_reaching(points: list[tuple[int, float, float]], level: float) -> tuple[int, float]:
    """The first (round, seconds) whose value is at least ``level``; (-1, nan) when none is."""
    for round_, seconds, value in points:
        if value >= level:
            return round_, seconds
    return -1, math.nan


def speed_rows(groups: list[Group], share: float = SHARE) -> list[dict]:
    """One row per validated federated group (see the module's docstring)."""
    curves = []  # (group, {seed: points}, comparison key)
    for group in groups:
        if group.engine != "federated":
            continue
        key = f"valid_{group.metric}"
        per_seed = {s.seed: validation_points(s.rounds, key) for s in group.seeds}
        per_seed = {seed: points for seed, points in per_seed.items() if points}
        if per_seed:
            curves.append((group, per_seed, _comparable(group)))
    best_of_all: dict[tuple[str, int], float] = defaultdict(lambda: -math.inf)
    for _, per_seed, comparable in curves:
        for seed, points in per_seed.items():
            best = max(value for _, _, value in points)
            best_of_all[comparable, seed] = max(best_of_all[comparable, seed], best)
    pct = f"{100 * share:g}"
    rows = []
    for group, per_seed, comparable in curves:
        figures: dict[str, list[float]] = defaultdict(list)
        for seed, points in sorted(per_seed.items()):
            best_round, _, best = max(points, key=lambda p: (p[2], -p[0]))
            figures["best"].append(best)
            figures["best_round"].append(best_round)
            levels = {"own": best, "all": best_of_all[comparable, seed]}
            for target, level in levels.items():
                round_, seconds = first_reaching(points, share * level)
                if round_ >= 0:
                    figures[f"rounds_{target}"].append(round_)
                    figures[f"seconds_{target}"].append(seconds)
        row: dict[str, object] = {"group": group.label, "seeds": len(per_seed)}
        metric = group.metric
        row[f"best_valid_{metric}"], row[f"best_valid_{metric}_std"] = mean_std(figures["best"])
        row["best_round"] = mean_std(figures["best_round"])[0]
        for target in ("own", "all"):
            for unit in ("rounds", "seconds"):
                values = figures[f"{unit}_{target}"]
                name = f"{unit}_to_{pct}_{target}"
                row[name], row[f"{name}_std"] = mean_std(values) if values else (None, None)
        row["reached_all"] = f"{len(figures['rounds_all'])}/{len(per_seed)}"
        rows.append(row)
    return rows


def _comparable(group: Group) -> str:
    """Groups with the same data, fleet, labelling devices and metric validate on the same
    users per seed."""
    scenario = group.scenario
    label_users = (scenario.get("estimator") or {}).get("label_users")
    parts = [scenario.get("data"), scenario.get("fleet"), label_users, group.metric]
    return json.dumps(parts, sort_keys=True, default=str)
