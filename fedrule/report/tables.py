"""Result tables: CSV text from rows, and the per-tier summary of a fleet run."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping

import numpy as np


def csv_text(rows: Iterable[Mapping[str, object]], columns: list[str] | None = None) -> str:
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{float(value):.6g}"
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return "" if value is None else value


def evaluated_device(row: Mapping[str, object]) -> bool:
    """Whether a row of a report's ``devices-seed<N>.csv`` was evaluated (rows without the
    column, from older runs, count as evaluated)."""
    return str(row.get("evaluated", "True")) == "True"


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    array = np.array([v for v in values if not np.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def tier_summary(
    device_tables: list[list[dict]], tier_names: tuple[str, ...], keys: list[str]
) -> list[dict]:
    """Per tier: devices, devices evaluated (those with a test item that accepted their
    payload), budget, bytes received, refused, and each metric's mean over the tier's evaluated
    devices (mean over seeds, with the spread of the seed means)."""
    rows = []
    for tier in [*tier_names, "all"]:
        per_seed = [
            [r for r in table if tier == "all" or r["tier"] == tier] for table in device_tables
        ]
        if not per_seed[0]:
            continue
        first = per_seed[0]
        budgets = sorted({r["budget_bytes"] for r in first})
        row: dict[str, object] = {
            "tier": tier,
            "devices": len(first),
            "evaluated": int(sum(_evaluated(r, keys) for r in first)),
            "budget_bytes": budgets[0] if len(budgets) == 1 else f"{budgets[0]}..{budgets[-1]}",
            "bytes_received_mean": float(np.mean([r["bytes_received"] for r in first])),
            "refused": int(sum(not r["accepted"] for r in first)),
            "seeds": len(per_seed),
        }
        for key in keys:
            seed_means = [
                float(np.nanmean([r[key] for r in rows_])) if rows_ else float("nan")
                for rows_ in per_seed
            ]
            row[key], row[f"{key}_std"] = mean_std(seed_means)
        rows.append(row)
    return rows


def _evaluated(row: Mapping[str, object], keys: list[str]) -> bool:
    """A device row's ``evaluated`` flag, or (older rows) whether it has a first metric."""
    if "evaluated" in row:
        return bool(row["evaluated"])
    return bool(keys) and not np.isnan(float(row[keys[0]]))


def every_device_columns(
    summary: list[dict], per_seed: list[Mapping[int, Mapping[str, float]]], keys: list[str]
) -> None:
    """Adds ``<key>_every_device`` (and its seed spread) to each tier row of one budget: its
    budget's configuration tested on every device (``eval.every_device``), mean over seeds."""
    for row in summary:
        budget = row["budget_bytes"]
        if not isinstance(budget, int | np.integer):  # "all", or a tier of several budgets
            continue
        for key in keys:
            values = [seed[int(budget)][key] for seed in per_seed if int(budget) in seed]
            if values and all(key in seed[int(budget)] for seed in per_seed):
                row[f"{key}_every_device"], row[f"{key}_every_device_std"] = mean_std(values)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table; ``x`` with an ``x_std`` column is shown as ``mean ± std``."""
    shown = [c for c in columns if not c.endswith("_std")]
    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for row in rows:
        cells = []
        for column in shown:
            value = row.get(column)
            if isinstance(value, float):
                text = "" if math.isnan(value) else f"{value:.4g}"
                spread = row.get(f"{column}_std")
                if text and isinstance(spread, float) and not math.isnan(spread):
                    text += f" ± {spread:.2g}"
            else:
                text = "" if value is None else str(value)
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def without_duplicate_recall(keys: Iterable[str], keep: Iterable[str] = ()) -> list[str]:
    """``keys`` without each ``recall@K`` (overall and per bucket) whose ``hit@K`` is among them,
    for a split that gives every user at most one test item (leave-one-out): there Recall@K is
    hits / 1, the same number as HitRate@K. ``keep``: names kept anyway (the run's
    ``eval.metric`` and its buckets)."""
    keys, keep = list(keys), set(keep)
    present = set(keys)

    def duplicate(key: str) -> bool:
        prefix, _, name = key.rpartition("/")
        if not name.startswith("recall@") or key in keep:
            return False
        hit = "hit@" + name.removeprefix("recall@")
        return (f"{prefix}/{hit}" if prefix else hit) in present

    return [k for k in keys if not duplicate(k)]


SHORT_OF_BUDGET = 0.5
"""A budget's dispatched configuration below this share of the budget gets a note."""


def dispatch_notes(
    summary: list[dict],
    searches_per_seed: list[Mapping[str, Mapping[str, object]]],
    verified: bool,
) -> None:
    """Adds ``note`` to each tier row (of one budget) whose dispatched configuration is no larger
    than a smaller budget's, or under ``SHORT_OF_BUDGET`` of its own budget, in some seed, and
    says why: ``verified`` (search.verify) measured it best on validation among the candidates
    that fit, else the search chose it. ``searches_per_seed``: per seed, budget (str) -> its
    search record (``bytes``)."""
    from fedrule.units import format_bytes

    names = {int(r["budget_bytes"]): str(r["tier"]) for r in summary if _one_budget(r)}
    why = (
        "verification (search.verify) measured it best on validation among the configurations "
        "that fit"
        if verified
        else "the search chose it by the estimator's prediction"
    )
    for row in summary:
        if not _one_budget(row):
            continue
        budget = int(row["budget_bytes"])
        found: dict[str, list[int]] = {}  # what is short -> the sizes of the seeds it holds in
        for searches in searches_per_seed:
            sizes = {int(b): int(s["bytes"]) for b, s in searches.items()}
            mine = sizes.get(budget)
            if mine is None:
                continue
            smaller = [b for b in sorted(sizes) if b < budget and sizes[b] >= mine]
            if smaller:  # the largest smaller budget whose configuration is as large
                tier = names.get(smaller[-1], format_bytes(smaller[-1]))
                found.setdefault(f", no more than {tier}'s configuration", []).append(mine)
            elif mine < SHORT_OF_BUDGET * budget:
                found.setdefault("", []).append(mine)
        parts = []
        for what, sizes in found.items():
            seeds = "" if len(sizes) == len(searches_per_seed) else f" in {len(sizes)} seed(s)"
            used = format_bytes(float(np.mean(sizes)))
            parts.append(f"{used} of its {format_bytes(budget)} budget{what}{seeds}")
        if parts:
            row["note"] = f"{'; '.join(parts)}: {why}"


def _one_budget(row: Mapping[str, object]) -> bool:
    return row["tier"] != "all" and isinstance(row["budget_bytes"], int | np.integer)
