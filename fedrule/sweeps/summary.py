"""``summary.csv`` of a sweep: per cell (its grid values) and per tier (federated runs; ``all``
is the whole fleet) or overall (centralised runs, tier ``all``), the mean and spread over seeds
of every test metric, and ``summary.png``, the metric against each swept key. Only
deterministic figures go in (no seconds: they are in ``runs.csv``), so a resumed sweep ends with
the same files as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from fedrule.sweeps.plan import SweepPlan, SweepRun
from fedrule.sweeps.plot import plot_sweep, sweep_metric

SUMMARY = "summary.csv"


def summarize_sweep(path: Path, plan: SweepPlan) -> list[dict]:
    """Write ``summary.csv`` from the finished runs of ``plan`` in ``path``; returns its rows."""
    keys = [k for axis in plan.axes for k in axis.keys]
    rows: list[dict] = []
    metric_keys: list[str] = []
    for cell, values in plan.cells:
        runs = [SweepRun(cell, values, seed) for seed in plan.seeds]
        per_run = [_run_rows(path / run.name) for run in runs if _done(path, run)]
        if not per_run:
            continue
        tiers = list(dict.fromkeys(tier for tiers in per_run for tier in tiers))
        for tier in tiers:
            found = [tiers[tier] for tiers in per_run if tier in tiers]
            row: dict[str, object] = {"cell": cell, **dict(values), "tier": tier}
            row["seeds"] = len(found)
            for name in ("devices", "budget_bytes", "bytes_received_mean", "bytes_down"):
                if name in found[0]:
                    row[name] = _mean_std([r[name] for r in found])[0]
            if "bytes_up" in found[0]:
                row["bytes_up"] = _mean_std([r["bytes_up"] for r in found])[0]
            for name in found[0].get("metrics", {}):
                if name not in metric_keys:
                    metric_keys.append(name)
                row[name], row[f"{name}_std"] = _mean_std([r["metrics"].get(name) for r in found])
            rows.append(row)
    columns = ["cell", *keys, "tier", "seeds", "devices", "budget_bytes"]
    columns += ["bytes_received_mean", "bytes_down", "bytes_up"]
    columns += [c for name in metric_keys for c in (name, f"{name}_std")]
    present = {k for row in rows for k in row}
    columns = [c for c in columns if c in present or c in ("cell", "tier", "seeds", *keys)]
    with open(path / SUMMARY, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    if rows:
        plot_sweep(path, plan, rows, sweep_metric(plan))
    return rows


def read_seconds(folder: Path) -> float | None:
    """Training seconds of a finished run (sum over its seeds), or None if not recorded."""
    metrics = json.loads((folder / "metrics.json").read_text())
    seconds = [s.get("seconds", s.get("train_seconds")) for s in metrics.get("seeds", {}).values()]
    seconds = [float(s) for s in seconds if s is not None]
    return sum(seconds) if seconds else None


def _done(path: Path, run: SweepRun) -> bool:
    return (path / run.name / "metrics.json").is_file()


def _run_rows(folder: Path) -> dict[str, dict]:
    """Per tier of one finished run: its figures and ``metrics`` (name -> value)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    if metrics.get("engine") == "federated" and metrics.get("tiers"):
        names = list(metrics.get("test", {}))
        out = {}
        for tier in metrics["tiers"]:
            budget = tier.get("budget_bytes")
            measured = names + [k for k in tier if k.endswith("_every_device")]  # eval.every_device
            entry = {
                "devices": tier.get("devices"),
                "budget_bytes": budget if isinstance(budget, int | float) else None,
                "bytes_received_mean": tier.get("bytes_received_mean"),
                "metrics": {name: tier.get(name) for name in measured},
            }
            out[str(tier["tier"])] = entry
        down, up = _traffic(folder)
        if "all" in out and down is not None:
            out["all"] |= {"bytes_down": down, "bytes_up": up}
        return out
    test = metrics.get("test", {})
    return {"all": {"metrics": {name: value.get("mean") for name, value in test.items()}}}


def _traffic(folder: Path) -> tuple[float | None, float | None]:
    """Bytes down and up over all training rounds (mean over the run's seeds)."""
    down, up = [], []
    for path in sorted(folder.glob("rounds-seed*.csv")):
        with open(path, newline="") as handle:
            rounds = list(csv.DictReader(handle))
        down.append(sum(float(r.get("bytes_down") or 0) for r in rounds))
        up.append(sum(float(r.get("bytes_up") or 0) for r in rounds))
    if not down:
        return None, None
    return float(np.mean(down)), float(np.mean(up))


def _mean_std(values: list[object]) -> tuple[float, float]:
    array = np.array(
        [float(v) for v in values if v is not None and not math.isnan(float(v))], dtype=float
    )
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value
