"""``fedrule report``: plots (PNG) and tables (markdown, CSV) from finished runs and sweeps.

Runs are grouped by their resolved scenario without ``name`` and ``seeds``: the runs of one sweep
cell (one per seed) form one group, and every figure is a mean over the group's seeds with the
spread (sample standard deviation) as error bars. A group is labelled by the scenario keys in
which the groups differ (``dim=8, lr=0.05``), or by the scenario's name when there is one group.

Files (each only when the runs hold its data): ``quality_vs_memory.png`` (+ ``.csv``/``.md``),
``tiers.png`` (+ ``.csv``/``.md``), ``curves.png``, ``traffic.png``, ``estimator.png``,
``privacy.png``, ``audit.png`` (+ ``audit.csv``/``.md``), ``speed.csv``/``.md`` (rounds and
seconds to 95% of the best validation), ``tradeoff.png`` (overall against tail
quality per budget, for runs that differ in ``search.tail_weight``), ``summary.csv``/``summary.md``
and ``report.md``, an index of them all.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from fedrule.errors import ConfigError
from fedrule.report.paired import paired_columns, paired_rows
from fedrule.report.speed import speed_columns, speed_rows
from fedrule.report.tables import csv_text, evaluated_device, mean_std


@dataclass
class Seed:
    """One seed of one run: what the report reads of it."""

    seed: int
    engine: str
    test: dict[str, float] = field(default_factory=dict)
    tiers: dict[str, dict[str, float]] = field(default_factory=dict)  # tier -> metric -> mean
    budgets: dict[str, float] = field(default_factory=dict)  # tier -> budget bytes
    rounds: list[dict[str, float]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # centralised RULE rows
    estimator: dict = field(default_factory=dict)
    seconds: float = float("nan")
    audit_test: dict[str, float] = field(default_factory=dict)  # the test-rank attack
    devices: list[dict] = field(default_factory=list)  # federated: devices-seed<N>.csv
    users: list[dict] = field(default_factory=list)  # centralised RULE: users-seed<N>.csv


@dataclass
class Group:
    label: str
    scenario: dict
    runs: list[Path] = field(default_factory=list)
    seeds: list[Seed] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.scenario.get("eval", {}).get("metric", "ndcg@10"))

    @property
    def engine(self) -> str:
        return str(self.scenario.get("engine", {}).get("kind", "centralized"))

    @property
    def method(self) -> str:
        """The method a federated group stands for (centralised rows name their own)."""
        federated = self.scenario.get("federated", {})
        method = federated.get("method", "rule")
        if method != "rule":  # the baselines: nested, per-tier
            return f"{method}-federated"
        return f"rule-federated-{federated.get('mode', 'full')}"


def find_runs(folders: list[Path]) -> list[Path]:
    """Run folders (with ``metrics.json``) given directly, one level below a given folder (a
    sweep folder, a ``runs/`` folder), or in the sweep folders of a given folder."""
    runs: list[Path] = []
    for folder in folders:
        if (folder / "metrics.json").is_file():
            runs.append(folder)
            continue
        if not folder.is_dir():
            raise ConfigError("no such folder", path=str(folder))
        found = sorted(_runs_in(folder))
        for sweep in sorted(p for p in folder.iterdir() if (p / "sweep.json").is_file()):
            found += sorted(_runs_in(sweep))
        if not found:
            raise ConfigError("holds no finished run (no metrics.json)", path=str(folder))
        runs.extend(found)
    return list(dict.fromkeys(runs))


def _runs_in(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "metrics.json").is_file()
    ]


def load_groups(runs: list[Path]) -> list[Group]:
    """Runs grouped by scenario (without name and seeds), each labelled."""
    groups: dict[str, Group] = {}
    for run in runs:
        scenario = yaml.safe_load((run / "scenario.yaml").read_text()) or {}
        key_scenario = {k: v for k, v in scenario.items() if k not in ("name", "seeds")}
        key = json.dumps(key_scenario, sort_keys=True, default=str)
        group = groups.setdefault(key, Group("", scenario))
        group.runs.append(run)
        group.seeds.extend(_read_seeds(run))
    out = list(groups.values())
    _label(out)
    return out


def _label(groups: list[Group]) -> None:
    flat = [
        _flatten({k: v for k, v in g.scenario.items() if k not in ("name", "seeds")})
        for g in groups
    ]
    keys = sorted(
        {k for f in flat for k in f if len({json.dumps(x.get(k), default=str) for x in flat}) > 1}
    )
    last = [k.rsplit(".", 1)[-1] for k in keys]
    short = [s if last.count(s) == 1 else k for s, k in zip(last, keys, strict=True)]
    names = [re.sub(r"-s\d+$", "", str(g.scenario.get("name", g.runs[0].name))) for g in groups]
    common = {  # per key, its most common value (labels then show only departures from it)
        k: Counter(json.dumps(f.get(k), default=str) for f in flat).most_common(1)[0][0]
        for k in keys
    }
    for group, values, name in zip(groups, flat, names, strict=True):
        shown = list(zip(short, keys, strict=True))
        if len(keys) > 4:  # only where this group leaves the most common value
            shown = [
                (s, k) for s, k in shown if json.dumps(values.get(k), default=str) != common[k]
            ]
        if shown and len(shown) <= 4:
            group.label = ", ".join(f"{s}={_short(values.get(k))}" for s, k in shown)
        elif keys and not shown:
            group.label = "the most common settings"
        elif names.count(name) > 1:
            group.label = f"{name} ({group.runs[0].name})"
        else:
            group.label = name


def _short(value: object) -> str:
    return json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)


def _flatten(obj: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_seeds(run: Path) -> list[Seed]:
    return seeds_of(json.loads((run / "metrics.json").read_text()), run)


def seeds_of(metrics: dict, run: Path) -> list[Seed]:
    """The seeds of a run from its ``metrics.json`` content and the per-seed files in ``run``
    (also a partial run folder, before its ``metrics.json`` is written)."""
    engine = metrics.get("engine", "centralized")
    out = []
    for name, data in metrics.get("seeds", {}).items():
        seed = Seed(int(name), engine)
        seed.estimator = data.get("estimator") or {}
        seed.audit_test = {k: float(v) for k, v in (data.get("audit_test") or {}).items()}
        seed.seconds = float(data.get("seconds", data.get("train_seconds", float("nan"))) or 0)
        if engine == "federated":
            seed.rounds = _read_csv(run / f"rounds-seed{name}.csv")
            devices = seed.devices = _read_csv(run / f"devices-seed{name}.csv")
            keys = list(metrics.get("test", {}))
            order = [str(t["tier"]) for t in metrics.get("tiers", [])]  # the fleet's order
            order += [str(d["tier"]) for d in devices]
            for tier in [*dict.fromkeys(t for t in order if t != "all"), "all"]:
                rows = [d for d in devices if tier == "all" or d["tier"] == tier]
                rows = [d for d in rows if evaluated_device(d)]
                seed.tiers[tier] = {
                    k: float(np.nanmean([r[k] for r in rows])) if rows else math.nan for k in keys
                }
                if tier != "all" and rows:
                    seed.budgets[tier] = float(rows[0]["budget_bytes"])
            _add_every_device(seed, data.get("searches") or {})
            seed.test = seed.tiers.get("all", {})
        else:
            seed.test = {k: float(v) for k, v in (data.get("test") or {}).items() if v is not None}
            seed.rows = data.get("rows") or []
            users = run / f"users-seed{name}.csv"
            seed.users = _read_csv(users) if users.is_file() else []
        out.append(seed)
    return out


def _add_every_device(seed: Seed, searches: dict) -> None:
    """``eval.every_device``: each tier's configuration tested on every device, as the tier's
    ``<metric>_every_device`` figures (from the run's searches, keyed by budget)."""
    for tier, budget in seed.budgets.items():
        measured = searches.get(str(int(budget)), {}).get("every_device") or {}
        seed.tiers[tier] |= {f"{k}_every_device": float(v) for k, v in measured.items()}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> object:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------- tables
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
        names += [f"recall@{k}"] * _has(group, f"recall@{k}")  # leave-one-out: the same as hit
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
                eps = [_final_epsilon(s) for s in group.seeds]
                row["epsilon"] = mean_std(eps)[0] if any(not math.isnan(e) for e in eps) else None
            rows.append(row)
    return rows


def _has(group: Group, name: str) -> bool:
    """Whether any seed of ``group`` recorded metric ``name`` (runs under leave-one-out no
    longer record recall@K, the same number as hit@K there)."""
    return any(name in t for s in group.seeds for t in [s.test, *s.tiers.values()])


def _final_epsilon(seed: Seed) -> float:
    if seed.estimator.get("epsilon") is not None:  # after the final (possibly noised) labels
        return float(seed.estimator["epsilon"])
    return _last(seed, "epsilon")


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
            every = [""] + ["_every_device"] * _has(group, f"{metric}_every_device")
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


# ---------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(ax: object, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, title, a light grid and the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig: object, path: Path, rect: tuple[float, ...] | None = None) -> Path:
    """Lay out (within ``rect`` of the figure, leaving room for a figure legend), write, close."""
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_memory(rows: list[dict], metric: str, path: Path) -> Path | None:
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, name, title in zip(
        axes, (metric, f"tail/{metric}"), ("overall", "tail items"), strict=True
    ):
        series: dict[str, list[dict]] = {}
        for row in rows:
            series.setdefault(str(row["series"]), []).append(row)
        for label, points in sorted(series.items()):
            points = sorted(points, key=lambda r: float(r["bytes"]))
            x = [float(p["bytes"]) / 1024 for p in points]
            y = [p[name] for p in points]
            err = [0.0 if math.isnan(p[f"{name}_std"]) else p[f"{name}_std"] for p in points]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ticks = sorted({float(r["bytes"]) / 1024 for r in rows})
        if ticks and ticks[-1] < 4 * ticks[0]:  # under two powers of two: label the points
            ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
            ax.minorticks_off()
        ax.set_xlabel("item-table memory on the device (KiB, log scale)")
        ax.set_ylabel(f"test {name}")
        ax.set_title(f"Quality against memory: {title}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_tiers(groups: list[Group], path: Path) -> Path | None:
    """Per tier, the metric and hit rate at its K on the tier's own devices (each tier holds
    other users, so these bars do not compare tiers), and with ``eval.every_device`` the tier's
    configuration tested on every device (hatched: the comparison across tiers)."""
    fed = [g for g in groups if g.engine == "federated" and g.seeds]
    if not fed:
        return None
    plt = _pyplot()
    metric = fed[0].metric
    k = metric.partition("@")[2]
    budget = {t: b for g in fed for t, b in g.seeds[0].budgets.items()}
    tiers = list(dict.fromkeys(t for g in fed for t in g.seeds[0].tiers))
    tiers.sort(key=lambda t: (t == "all", budget.get(t, math.inf)))
    series = [(g, "") for g in fed]
    series += [(g, "_every_device") for g in fed if _has(g, f"{metric}_every_device")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    width = 0.8 / len(series)
    for ax, name in zip(axes, (metric, f"hit@{k}"), strict=True):
        for i, (group, suffix) in enumerate(series):
            means, errs = [], []
            for tier in tiers:
                values = (s.tiers.get(tier, {}).get(name + suffix, math.nan) for s in group.seeds)
                mean, std = mean_std(values)
                means.append(mean)
                errs.append(0.0 if math.isnan(std) else std)
            x = np.arange(len(tiers)) + (i - (len(series) - 1) / 2) * width
            where = "every device" if suffix else "own devices"
            label = where if len(fed) == 1 else f"{group.label}: {where}"
            color = f"C{fed.index(group) % 10}"
            style = (
                {"hatch": "//", "edgecolor": color, "linewidth": 0, "alpha": 0.6} if suffix else {}
            )
            ax.bar(x, means, width, yerr=errs, capsize=3, label=label, color=color, **style)
        ax.set_xticks(np.arange(len(tiers)), tiers)
        ax.set_xlabel("device tier (all: the whole fleet)")
        ax.set_ylabel(f"test {name} (mean over evaluated devices)")
        ax.set_title(f"Per-tier test {name}")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()  # below the bars, never over them
    columns = min(4, max(1, len(labels)))
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.025),
        ncol=columns,
        fontsize=7,
        frameon=False,
    )
    rows = -(-len(labels) // columns)
    note = "own devices: each tier's own users, one test item each (different users per tier)" + (
        "; every device: the tier's configuration tested on all devices" if len(series) > 1 else ""
    )
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="dimgrey")
    return _save(fig, path, rect=(0, 0.04 * rows + 0.04, 1, 1))


def _per_round(group: Group, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rounds, cumulative seconds (mean over seeds), and ``column``'s mean and spread per round
    (rounds every seed has)."""
    seeds = [s for s in group.seeds if s.rounds]
    n = min(len(s.rounds) for s in seeds)
    rounds = np.array([float(seeds[0].rounds[i]["round"]) for i in range(n)])
    values = np.array([[float(s.rounds[i].get(column, math.nan)) for i in range(n)] for s in seeds])
    seconds = np.array(
        [np.cumsum([float(s.rounds[i]["seconds"]) for i in range(n)]) for s in seeds]
    )
    spread = values.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros(n)
    return rounds, seconds.mean(axis=0), values.mean(axis=0), spread


def plot_curves(groups: list[Group], path: Path) -> Path | None:
    fed = [g for g in groups if g.engine == "federated" and any(s.rounds for s in g.seeds)]
    fed = [g for g in fed if any(f"valid_{g.metric}" in s.rounds[0] for s in g.seeds if s.rounds)]
    if not fed:
        return None
    plt = _pyplot()
    metric = fed[0].metric
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for group in fed:
        rounds, seconds, mean, spread = _per_round(group, f"valid_{group.metric}")
        keep = ~np.isnan(mean)
        for ax, x in zip(axes, (rounds, seconds), strict=True):
            (line,) = ax.plot(x[keep], mean[keep], marker="o", label=group.label)
            ax.fill_between(
                x[keep],
                (mean - spread)[keep],
                (mean + spread)[keep],
                alpha=0.2,
                color=line.get_color(),
            )
    for ax, xlabel in zip(axes, ("training round", "training time (s, cumulative)"), strict=True):
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=xlabel == "training round"))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation {metric} (full configuration)")
    axes[0].set_title(f"Validation {metric} per round (± spread over seeds)")
    axes[1].set_title(f"Validation {metric} against training time")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_traffic(groups: list[Group], path: Path) -> Path | None:
    fed = [g for g in groups if g.engine == "federated" and any(s.rounds for s in g.seeds)]
    if not fed:
        return None
    plt = _pyplot()
    peak = max(
        float(r.get(c, 0.0))
        for g in fed
        for s in g.seeds
        for r in s.rounds
        for c in ("bytes_down", "bytes_up")
    )
    unit, scale = ("MiB", 2**20) if peak >= 2**20 else ("KiB", 2**10)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, column, title in zip(
        axes,
        ("bytes_down", "bytes_up"),
        ("down (server to devices)", "up (devices to server)"),
        strict=True,
    ):
        for group in fed:
            rounds, _, mean, spread = _per_round(group, column)
            ax.errorbar(
                rounds, mean / scale, yerr=spread / scale, marker="o", capsize=3, label=group.label
            )
        ax.set_xlabel("training round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"traffic per round ({unit}, all devices)")
        ax.set_title(f"Bytes {title}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_estimator(groups: list[Group], path: Path) -> Path | None:
    having = [g for g in groups if any(s.estimator.get("holdout_predicted") for s in g.seeds)]
    if not having:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    low, high = math.inf, -math.inf
    metric = having[0].metric
    for group in having:
        xs, ys, rhos = [], [], []
        for seed in group.seeds:
            xs += seed.estimator.get("holdout_true", [])
            ys += seed.estimator.get("holdout_predicted", [])
            rhos.append(float(seed.estimator.get("holdout_spearman", math.nan)))
        rho = mean_std(rhos)[0]
        ax.scatter(xs, ys, s=14, alpha=0.7, label=f"{group.label} (Spearman {rho:.3f})")
        low, high = min(low, *xs, *ys), max(high, *xs, *ys)
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="predicted = true")
    _finish(
        ax,
        f"true validation {metric} of the configuration",
        f"estimator's predicted {metric}",
        "Performance estimator on held-out configurations",
    )
    return _save(fig, path)


def plot_privacy(groups: list[Group], path: Path) -> Path | None:
    """Test quality against the final ε, overall and per tier (federated), non-private runs as
    dashed lines of the same colour."""
    private, public = [], []
    for group in groups:
        eps = [_final_epsilon(s) for s in group.seeds]
        if any(not math.isnan(e) for e in eps):
            private.append((group, mean_std(eps)))
        elif group.engine == "federated":
            public.append(group)
    if not private:
        return None
    plt = _pyplot()
    metric = private[0][0].metric
    tiers = list(private[0][0].seeds[0].tiers) or ["all"]
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    for i, tier in enumerate(tiers):
        color = f"C{i % 10}"
        points = []
        for group, (eps, eps_std) in private:
            values = [(s.tiers.get(tier) or s.test).get(metric, math.nan) for s in group.seeds]
            points.append((eps, eps_std, *mean_std(values)))
        points.sort()
        ax.errorbar(
            [p[0] for p in points],
            [p[2] for p in points],
            xerr=[p[1] for p in points],
            yerr=[p[3] for p in points],
            marker="o",
            capsize=3,
            color=color,
            linewidth=2.0 if tier == "all" else 1.0,
            label=f"{tier} (DP)",
        )
        for j, group in enumerate(public):
            values = [(s.tiers.get(tier) or s.test).get(metric, math.nan) for s in group.seeds]
            label = f"{tier}, no DP" + (f": {group.label}" if len(public) > 1 else "")
            ax.axhline(
                mean_std(values)[0],
                linestyle=("--", ":", "-.")[j % 3],
                color=color,
                alpha=0.7,
                label=label,
            )
    ax.set_xscale("log")
    ticks = sorted({round(eps, 2) for _, (eps, _) in private})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(ticks[0] / 1.6, ticks[-1] * 1.6)
    ax.set_xlabel("privacy loss ε after training (log scale; lower is more private)")
    ax.set_ylabel(f"test {metric} (mean over the tier's devices)")
    ax.set_title("Privacy–utility: client-level DP, per device tier")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


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
            per_seed = [_round_mean(s, f"audit_{attack}_auc") for s in group.seeds]
            row[f"{attack}_auc"] = mean_std(per_seed)[0]
        uploads = [row[f"{a}_auc"] for a in UPLOAD_ATTACKS]
        row["strongest_auc"] = max((v for v in uploads if not math.isnan(v)), default=math.nan)
        for key in ("test_rank_exact", "test_rank_bits", "test_bucket"):
            row[key] = mean_std(s.audit_test.get(key, math.nan) for s in group.seeds)[0]
        metric = group.metric
        row[metric], row[f"{metric}_std"] = mean_std(
            s.test.get(metric, math.nan) for s in group.seeds
        )
        eps = [_final_epsilon(s) for s in group.seeds]
        row["epsilon"] = mean_std(eps)[0] if any(not math.isnan(e) for e in eps) else None
        local = [_last(s, "local_epsilon") for s in group.seeds]  # each device's, local DP
        row["local_epsilon"] = mean_std(local)[0] if any(not math.isnan(e) for e in local) else None
        row["upload_bytes_per_round"] = mean_std(
            np.mean([r.get("bytes_up", math.nan) for r in s.rounds]) for s in group.seeds
        )[0]
        rows.append(row)
    return rows


def _round_values(seed: Seed, key: str) -> list[float]:
    """``key``'s recorded values over a seed's rounds (absent and NaN cells left out)."""
    values = (r.get(key) for r in seed.rounds)
    return [v for v in values if isinstance(v, float) and not math.isnan(v)]


def _last(seed: Seed, key: str) -> float:
    values = _round_values(seed, key)
    return values[-1] if values else math.nan


def _round_mean(seed: Seed, key: str) -> float:
    values = _round_values(seed, key)
    return float(np.mean(values)) if values else math.nan


def plot_audit(rows: list[dict], metric: str, path: Path) -> Path | None:
    """The strongest upload attack's AUC against test quality, one point per group."""
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    for i, row in enumerate(rows):
        ax.errorbar(
            row[metric],
            row["strongest_auc"],
            xerr=row[f"{metric}_std"] or 0.0,
            marker="os^Dv<>p*h"[i % 10],
            markersize=8,
            capsize=3,
            color=f"C{i % 10}",
            linestyle="none",
            label=str(row["group"]),
        )
    ax.axhline(0.5, linestyle="--", color="grey", label="chance (AUC 0.5)")
    ax.axhline(0.6, linestyle=":", color="grey", label="target (AUC 0.6)")
    ax.set_xlabel(f"test {metric} (all devices; higher is better)")
    ax.set_ylabel("strongest upload attack's AUC (positives vs other items)")
    ax.set_title("Leakage audit: what the server infers vs recommendation quality")
    ax.set_ylim(0.4, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


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


def plot_tradeoff(rows: list[dict], metric: str, path: Path) -> Path | None:
    """Per budget, overall against tail quality as ``search.tail_weight`` grows."""
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    points: dict[str, list[dict]] = {}
    for row in rows:
        points.setdefault(f"{row['point']} ({row['series']})", []).append(row)
    for i, (label, members) in enumerate(points.items()):
        members = sorted(members, key=lambda r: r["tail_weight"])
        x = [r[f"tail/{metric}"] for r in members]
        y = [r[metric] for r in members]
        ax.plot(x, y, marker="o", color=f"C{i % 10}", label=f"budget {label}")
        for r, xi, yi in zip(members, x, y, strict=True):
            ax.annotate(
                f"{r['tail_weight']:g}",
                (xi, yi),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    _finish(
        ax,
        f"test tail/{metric} (items outside the popular head)",
        f"test {metric} (all items)",
        "Overall against tail quality; points labelled by search.tail_weight",
    )
    return _save(fig, path)


# ---------------------------------------------------------------------- the command
def write_report(folders: list[Path], out: Path) -> list[Path]:
    """Every plot and table the given runs allow, in ``out``; returns the files written."""
    groups = load_groups(find_runs(folders))
    if out.exists() and not out.is_dir():
        raise ConfigError("is a file, not a folder", path=str(out), hint="--out")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []
    summary = summary_rows(groups)
    metric = groups[0].metric
    k = metric.partition("@")[2]
    columns = ["group", "engine", "tier", "seeds", "budget_bytes"]
    for name in (metric, f"tail/{metric}", f"hit@{k}", f"recall@{k}", f"{metric}_every_device"):
        columns += [name, f"{name}_std"]
    columns += ["train_seconds", "bytes_down", "bytes_up", "epsilon"]
    columns = [c for c in columns if any(r.get(c) is not None for r in summary)]
    written.append(_write(out / "summary.csv", csv_text(summary, columns)))
    written.append(_write(out / "summary.md", markdown_table(summary, columns)))
    paired = paired_rows(groups)
    if paired:
        pcols = paired_columns(metric)
        written.append(_write(out / "paired.csv", csv_text(paired, pcols)))
        written.append(_write(out / "paired.md", markdown_table(paired, pcols)))
    speed = speed_rows(groups)
    if speed:
        scols = speed_columns(metric)
        written.append(_write(out / "speed.csv", csv_text(speed, scols)))
        written.append(_write(out / "speed.md", markdown_table(speed, scols)))
    memory = memory_rows(groups)
    if memory:
        mcols = ["series", "point", "bytes", metric, f"{metric}_std"]
        mcols += [f"tail/{metric}", f"tail/{metric}_std", "seeds"]
        written.append(_write(out / "quality_vs_memory.csv", csv_text(memory, mcols)))
        written.append(_write(out / "quality_vs_memory.md", markdown_table(memory, mcols)))
    audit = audit_rows(groups)
    if audit:
        acols = ["group", "seeds", *[f"{a}_auc" for a in ("count", *UPLOAD_ATTACKS)]]
        acols += ["strongest_auc", "test_rank_exact", "test_rank_bits", "test_bucket"]
        acols += [metric, f"{metric}_std", "epsilon", "local_epsilon", "upload_bytes_per_round"]
        acols = [c for c in acols if any(r.get(c) is not None for r in audit)]
        written.append(_write(out / "audit.csv", csv_text(audit, acols)))
        written.append(_write(out / "audit.md", markdown_table(audit, acols)))
    plots = {
        "quality_vs_memory.png": lambda p: plot_memory(memory, metric, p),
        "tiers.png": lambda p: plot_tiers(groups, p),
        "curves.png": lambda p: plot_curves(groups, p),
        "traffic.png": lambda p: plot_traffic(groups, p),
        "estimator.png": lambda p: plot_estimator(groups, p),
        "privacy.png": lambda p: plot_privacy(groups, p),
        "audit.png": lambda p: plot_audit(audit, metric, p),
        "tradeoff.png": lambda p: plot_tradeoff(tradeoff_rows(groups), metric, p),
    }
    why = {
        "quality_vs_memory.png": "no federated run and no centralised run with search.budgets",
        "tiers.png": "no federated run",
        "curves.png": "no federated run with federated.eval_every",
        "traffic.png": "no federated run",
        "estimator.png": "no run saved the estimator's held-out predictions",
        "privacy.png": "no run with a privacy section (no ε recorded)",
        "audit.png": "no run with privacy.audit",
        "tradeoff.png": "no runs that differ in search.tail_weight",
    }
    images = []
    for name, plot in plots.items():
        path = plot(out / name)
        if path is None:
            notes.append(f"- no `{name}`: {why[name]}")
        else:
            written.append(path)
            images.append(name)
    extra = [_PAIRED_HEAD, markdown_table(paired, paired_columns(metric))] if paired else []
    if speed:
        extra += [_SPEED_HEAD, markdown_table(speed, speed_columns(metric))]
    index = _index(groups, summary, columns, images, notes, extra)
    written.append(_write(out / "report.md", index))
    return written


_PAIRED_HEAD = (
    "## Against centralised RULE on the same devices\n\n"
    "Each tier against centralised RULE's configuration of its budget on the tier's own "
    "devices (`ratio`), and its configuration on every device against the centralised one on "
    "every user (`every_device_ratio`); mean ± spread over the fleet's seeds.\n"
)

_SPEED_HEAD = (
    "## How fast validation rises\n\n"
    "Per federated group: the best validation figure and its round, and the rounds and "
    "training seconds until validation first reached 95% of the seed's own best (`_own`) and "
    "of the best any group reached on the same data, fleet, labelling devices and seed "
    "(`_all`); mean ± spread over the seeds that reached it.\n"
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _index(
    groups: list[Group],
    summary: list[dict],
    columns: list[str],
    images: list[str],
    notes: list[str],
    extra: tuple[str, ...] | list[str] = (),
) -> str:
    lines = ["# fedrule report", ""]
    for group in groups:
        runs = ", ".join(str(r) for r in group.runs)
        lines.append(f"- **{group.label}** ({group.engine}, {len(group.seeds)} seed(s)): {runs}")
    lines += [
        "",
        "## Test metrics (mean ± spread over seeds)",
        "",
        markdown_table(summary, columns),
        *extra,
    ]
    for name in images:
        lines += [f"![{name}]({name})", ""]
    if notes:
        lines += ["## Not drawn", "", *notes, ""]
    return "\n".join(lines)
