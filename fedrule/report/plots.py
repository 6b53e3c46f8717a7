"""The report's plots (PNG) over groups of runs, each drawn only when the runs hold its data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from fedrule.report.runs import Group, final_epsilon, recorded
from fedrule.report.tables import mean_std


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
    series += [(g, "_every_device") for g in fed if recorded(g, f"{metric}_every_device")]
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
        eps = [final_epsilon(s) for s in group.seeds]
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
    ax.set_ylim(0.4, 1.02)
    _finish(
        ax,
        f"test {metric} (all devices; higher is better)",
        "strongest upload attack's AUC (positives vs other items)",
        "Leakage audit: what the server infers vs recommendation quality",
    )
    return _save(fig, path)


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
