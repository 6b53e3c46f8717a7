"""Fleet tiers against centralised RULE on the same devices (``paired.csv`` of ``fedrule report``).

A tier's test metric is a mean over the devices the seed drew into it: 1,510 ML-1M users hold a
tier's mean only to about ±10%, so a tier can look better or worse than the centralised model
by the luck of its draw alone. When a report holds federated runs (``devices-seed<N>.csv``) and
centralised RULE runs that saved each user's test metric at their budgets
(``users-seed<N>.csv``), each tier is also set against the centralised configuration of its
budget on exactly its own devices: per fleet seed, the mean over the tier's evaluated devices
of the fleet's metric and of the centralised one (the centralised group's mean over its seeds),
and their ratio. ``every_device_ratio`` sets the tier's configuration tested on every device
(``eval.every_device``) against the centralised one on every user, and ``all`` sets each device
against the centralised configuration of its own budget.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np

from fedrule.report.runs import Group, Seed
from fedrule.report.tables import evaluated_device, mean_std

_COLUMN = re.compile(r"^(?P<method>\S+) (?P<metric>\S+) (?P<bytes>\d+)$")


def reference_by_user(group: Group, method: str = "rule") -> dict[int, dict[str, float]]:
    """Budget bytes -> user id -> a centralised group's ``method`` metric (``group.metric``),
    the mean over its seeds that saved it."""
    values: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for seed in group.seeds:
        if not seed.users:
            continue
        matches = [(c, _COLUMN.match(str(c))) for c in seed.users[0]]
        budgets = {
            c: int(m["bytes"])
            for c, m in matches
            if m and m["method"] == method and m["metric"] == group.metric
        }
        for row in seed.users:
            for column, budget in budgets.items():
                if not _missing(row[column]):
                    values[budget][str(row["user_id"])].append(float(row[column]))
    return {b: {u: float(np.mean(v)) for u, v in users.items()} for b, users in values.items()}


def paired_rows(groups: list[Group]) -> list[dict]:
    """Per federated group, centralised reference group and tier (and ``all``): the fleet's
    metric on the tier's devices, the reference on the same devices, and their ratio (mean and
    spread over the fleet's seeds); only references with the same ``data`` section, and tiers
    whose budget the reference holds."""
    references = [
        (g, reference_by_user(g))
        for g in groups
        if g.engine != "federated" and any(s.users for s in g.seeds)
    ]
    rows = []
    for fleet in (g for g in groups if g.engine == "federated" and g.seeds[0].devices):
        metric = fleet.metric
        for ref_group, reference in references:
            same_data = ref_group.scenario.get("data") == fleet.scenario.get("data")
            if not reference or ref_group.metric != metric or not same_data:
                continue  # users and budgets are only comparable on the same split
            rows += _fleet_rows(fleet, ref_group.label, reference, metric)
    return rows


def _fleet_rows(
    fleet: Group, label: str, reference: dict[int, dict[str, float]], metric: str
) -> list[dict]:
    tiers = [t for t in fleet.seeds[0].tiers if t != "all"]
    rows = []
    for tier in [*tiers, "all"]:
        pairs = [_seed_pair(seed, tier, reference, metric) for seed in fleet.seeds]
        if not pairs or any(p is None for p in pairs):
            continue
        ours = [p[0] for p in pairs]
        theirs = [p[1] for p in pairs]
        budgets = {b for p in pairs for b in p[2]}
        row: dict[str, object] = {"group": fleet.label, "reference": label, "tier": tier}
        row["budget_bytes"] = budgets.pop() if len(budgets) == 1 else None
        row["seeds"] = len(pairs)
        row[metric], row[f"{metric}_std"] = mean_std(ours)
        row[f"reference_{metric}"], row[f"reference_{metric}_std"] = mean_std(theirs)
        ratios = [a / b if b else math.nan for a, b in zip(ours, theirs, strict=True)]
        row["ratio"], row["ratio_std"] = mean_std(ratios)
        every = [_every_device_ratio(s, tier, reference, metric) for s in fleet.seeds]
        row["every_device_ratio"], row["every_device_ratio_std"] = mean_std(every)
        rows.append(row)
    return rows


def _seed_pair(
    seed: Seed, tier: str, reference: dict[int, dict[str, float]], metric: str
) -> tuple[float, float, set[int]] | None:
    """One fleet seed's mean metric over the tier's evaluated devices, the reference's mean
    over the same devices, and their budgets; None when the reference lacks a device's budget
    or user, or the tier has no evaluated device."""
    mine, ref, budgets = [], [], set()
    for device in seed.devices:
        if tier != "all" and device["tier"] != tier:
            continue
        if not evaluated_device(device) or _missing(device[metric]):
            continue
        value = reference.get(int(device["budget_bytes"]), {}).get(str(device["user_id"]))
        if value is None:
            return None
        budgets.add(int(device["budget_bytes"]))
        mine.append(float(device[metric]))
        ref.append(value)
    if not mine:
        return None
    return float(np.mean(mine)), float(np.mean(ref)), budgets


def _every_device_ratio(
    seed: Seed, tier: str, reference: dict[int, dict[str, float]], metric: str
) -> float:
    """The tier's configuration on every device (``eval.every_device``) against the reference
    configuration of its budget on every user; NaN without the figure."""
    measured = seed.tiers.get(tier, {}).get(f"{metric}_every_device")
    budget = seed.budgets.get(tier)
    by_user = None if budget is None else reference.get(int(budget))
    if measured is None or _missing(measured) or not by_user:
        return math.nan
    return float(measured) / float(np.mean(list(by_user.values())))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


PAIRED_COLUMNS = ("group", "reference", "tier", "budget_bytes", "seeds")


def paired_columns(metric: str) -> list[str]:
    """The columns of ``paired.csv``/``paired.md``."""
    names = [metric, f"reference_{metric}", "ratio", "every_device_ratio"]
    return [*PAIRED_COLUMNS, *[c for n in names for c in (n, f"{n}_std")]]
