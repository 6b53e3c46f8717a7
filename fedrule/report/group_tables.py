"""The report's tables over groups of runs: the summary, quality against memory, the leakage
audit and the overall-against-tail trade-off (``paired.py`` and ``speed.py`` hold two more)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from fedrule.report.runs import Group, final_epsilon, last_value, recorded, round_mean
from fedrule.report.tables import mean_std


def summary_rows(groups: list[Group]) -> list[dict]:
    """Per group and tier (federated) or overall: seeds, the metric, tail metric, hit rate (and
    recall, where the runs recorded it) at the metric's K (mean and spread over seeds; with
    ``eval.every_device`` also the tier's configuration tested on every device), training
    seconds, traffic and final ε."""
    rows = []
    for group in groups:
        metric = group.metric
        k = metric.partition("@")[2]
        names = [metric, f"tail/{metric}", f"hit@{k}"]
        names += [f"recall@{k}"] * recorded(group, f"recall@{k}")  # leave-one-out: = hit
        tiers = list(group.seeds[0].tiers) if group.engine == "federated" else ["all"]
        every = f"{metric}_every_device"  # eval.every_device
        if any(every in t for s in group.seeds for t in s.tiers.values()):
            names.append(every)
        for tier in tiers:
            row: dict[str, object] = {"group": group.label, "engine": group.engine}
            row |= {"tier": tier, "seeds": len(group.seeds)}
            budgets = [s.budgets.get(tier) for s in group.seeds]
            row["budget_bytes"] = budgets[0] if budgets and budgets[0] else None
            for name in names:
                values = [
                    (s.tiers.get(tier, {}) if group.engine == "federated" else s.test).get(
                        name, math.nan
                    )
                    for s in group.seeds
                ]
                row[name], row[f"{name}_std"] = mean_std(values)
            if tier == "all":
                row["train_seconds"] = mean_std(s.seconds for s in group.seeds)[0]
                for column in ("bytes_down", "bytes_up"):
                    totals = [sum(r.get(column, 0.0) for r in s.rounds) for s in group.seeds]
                    row[column] = float(np.mean(totals)) if any(totals) else None
                eps = [final_epsilon(s) for s in group.seeds]
                row["epsilon"] = mean_std(eps)[0] if any(not math.isnan(e) for e in eps) else None
            rows.append(row)
    return rows


def memory_rows(groups: list[Group]) -> list[dict]:
    """Quality against memory: centralised RULE rows (method, searcher, budget) and federated
    tiers (their budget; on each tier's own devices, and with ``eval.every_device`` on every
    device), mean and spread over seeds of the metric and tail metric."""
    out = []
    federated = [g.method for g in groups if g.engine == "federated"]
    for group in groups:
        metric = group.metric
        names = (metric, f"tail/{metric}")
        prefix = f"{group.label}: " if len(groups) > 1 else ""
        if group.engine == "federated" and len(groups) == len(set(federated)):
            prefix = ""  # every group is a different method: its name says which
        if group.engine == "federated":
            every = [""] + ["_every_device"] * recorded(group, f"{metric}_every_device")
            for suffix, tier in itertools.product(every, group.seeds[0].tiers):
                if tier == "all":
                    continue
                where = " (every device)" if suffix else " (own devices)" * (len(every) > 1)
                row: dict[str, object] = {"series": f"{prefix}{group.method}{where}"}
                row["point"] = tier
                row["bytes"] = group.seeds[0].budgets.get(tier, math.nan)
                for name in names:
                    values = [
                        s.tiers.get(tier, {}).get(name + suffix, math.nan) for s in group.seeds
                    ]
                    row[name], row[f"{name}_std"] = mean_std(values)
                row["seeds"] = len(group.seeds)
                out.append(row)
            continue
        points: dict[tuple, list[dict]] = {}
        for seed in group.seeds:
            for r in seed.rows:
                points.setdefault((r["method"], r.get("searcher") or "", r["budget"]), []).append(r)
        for (method, searcher, budget), rows in points.items():
            series = method + (f" ({searcher})" if searcher else "")
            row = {"series": f"{prefix}{series}", "point": budget}
            row["bytes"] = mean_std(float(r["bytes"]) for r in rows)[0]
            for name in names:
                row[name], row[f"{name}_std"] = mean_std(float(r.get(name, math.nan)) for r in rows)
            row["seeds"] = len(rows)
            out.append(row)
    return out


UPLOAD_ATTACKS = ("touched", "norm", "svd", "imia")


def audit_rows(groups: list[Group]) -> list[dict]:
    """Per group with a leakage audit: each attack's AUC (mean over rounds, then seeds), the
    strongest upload attack, the test-rank attack, test quality and ε."""
    rows = []
    for group in groups:
        if not any(k.startswith("audit_") for s in group.seeds for r in s.rounds for k in r):
            continue
        row: dict[str, object] = {"group": group.label, "seeds": len(group.seeds)}
        for attack in ("count", *UPLOAD_ATTACKS):
            per_seed = [round_mean(s, f"audit_{attack}_auc") for s in group.seeds]
            row[f"{attack}_auc"] = mean_std(per_seed)[0]
        uploads = [row[f"{a}_auc"] for a in UPLOAD_ATTACKS]
        row["strongest_auc"] = max((v for v in uploads if not math.isnan(v)), default=math.nan)
        for key in ("test_rank_exact", "test_rank_bits", "test_bucket"):
            row[key] = mean_std(s.audit_test.get(key, math.nan) for s in group.seeds)[0]
        metric = group.metric
        row[metric], row[f"{metric}_std"] = mean_std(
            s.test.get(metric, math.nan) for s in group.seeds
        )
        eps = [final_epsilon(s) for s in group.seeds]
        row["epsilon"] = mean_std(eps)[0] if any(not math.isnan(e) for e in eps) else None
        local = [last_value(s, "local_epsilon") for s in group.seeds]  # each device's, local DP
        row["local_epsilon"] = mean_std(local)[0] if any(not math.isnan(e) for e in local) else None
        row["upload_bytes_per_round"] = mean_std(
            np.mean([r.get("bytes_up", math.nan) for r in s.rounds]) for s in group.seeds
        )[0]
        rows.append(row)
    return rows


def tradeoff_rows(groups: list[Group]) -> list[dict]:
    """Overall against tail quality of RULE's customised configurations, per budget, for
    groups that differ in ``search.tail_weight`` (the objective's share of tail quality)."""
    weights = [float(g.scenario.get("search", {}).get("tail_weight", 0.0)) for g in groups]
    if len(set(weights)) < 2:
        return []
    out = []
    for group, weight in sorted(zip(groups, weights, strict=True), key=lambda p: p[1]):
        for row in memory_rows([group]):
            if str(row["series"]).startswith("rule"):
                out.append({**row, "tail_weight": weight})
    return out
