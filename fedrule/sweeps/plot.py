"""``summary.png`` of a sweep: the run's metric against each swept key (one panel per grid
axis), mean ± spread over seeds, from the rows of ``summary.csv``: per tier when the axis is the
only one (federated runs; ``all`` drawn bold), else one line per value of the other axes (the
whole fleet's figure)."""

from __future__ import annotations

import math
from pathlib import Path

from fedrule.sweeps.plan import GridAxis, SweepPlan

PLOT = "summary.png"
MAX_PANELS = 3
MAX_LABEL = 24
"""Axes whose value texts are longer (mappings, long lists) get no panel: their labels would
not fit under the x axis."""


def plotted_axes(plan: SweepPlan) -> list[GridAxis]:
    """The grid axes that get a panel: two values or more, each short enough to label."""
    return [
        axis
        for axis in plan.axes
        if len(axis.values) >= 2 and all(len(v) <= MAX_LABEL for v in axis.values)
    ][:MAX_PANELS]


def axis_points(
    rows: list[dict], plan: SweepPlan, axis: GridAxis, metric: str
) -> dict[str, list[tuple[str, float, float]]]:
    """Per line of ``axis``'s panel, its points (value text, mean, spread) in the axis's value
    order: a line per tier when ``axis`` is the sweep's only one, else a line per combination
    of the other axes' values (tier ``all``)."""
    others = [a for a in plan.axes if a is not axis]
    lines: dict[str, list[tuple[str, float, float]]] = {}
    for value in axis.values:
        settings = dict(axis.pairs(value))
        for row in rows:
            if any(str(row.get(k)) != v for k, v in settings.items()):
                continue
            if others and row["tier"] != "all":
                continue
            name = str(row["tier"])
            if others:
                name = ", ".join(
                    f"{k.rsplit('.', 1)[-1]}={row.get(k)}" for a in others for k in a.keys
                )
            mean, spread = _number(row.get(metric)), _number(row.get(f"{metric}_std"))
            lines.setdefault(name, []).append((value, mean, 0.0 if math.isnan(spread) else spread))
    return lines


def plot_sweep(path: Path, plan: SweepPlan, rows: list[dict], metric: str) -> Path | None:
    """Write ``summary.png`` in the sweep folder ``path``; None (nothing written) when no axis
    has a panel or no run has finished."""
    axes = plotted_axes(plan)
    if not axes or not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, len(axes), figsize=(6.2 * len(axes), 4.6), squeeze=False)
    seeds = max(int(row.get("seeds", 1)) for row in rows)
    for ax, axis in zip(panels[0], axes, strict=True):
        numeric = _numbers(axis.values)
        for i, (name, points) in enumerate(axis_points(rows, plan, axis, metric).items()):
            if numeric:
                points = sorted(points, key=lambda p: numeric[p[0]])
            x = [numeric[v] if numeric else axis.values.index(v) for v, _, _ in points]
            ax.errorbar(
                x,
                [p[1] for p in points],
                yerr=[p[2] for p in points],
                marker="o",
                capsize=3,
                color="black" if name == "all" else f"C{i % 10}",
                linewidth=2.2 if name == "all" else 1.2,
                label=name,
            )
        if numeric:  # ticks at the swept values; log scale over a wide positive range
            ticks = sorted(numeric.values())
            if ticks[0] > 0 and ticks[-1] / ticks[0] >= 20:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        else:
            ax.set_xticks(range(len(axis.values)), axis.values)
            ax.set_xlim(-0.5, len(axis.values) - 0.5)
        ax.set_xlabel(axis.key)
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"{metric} against {axis.key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Sweep: mean ± spread over {seeds} seed(s)", fontsize=10)
    fig.tight_layout()
    out = path / PLOT
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def sweep_metric(plan: SweepPlan) -> str:
    """The metric the sweep's runs select by: eval.metric of its scenario with its ``--set``
    overrides (a grid over eval.metric itself plots the base's)."""
    from fedrule.scenario import load_scenario

    return load_scenario(plan.scenario, list(plan.sets)).eval.metric


def _numbers(values: tuple[str, ...]) -> dict[str, float]:
    """Each value text as a number, or {} when any is not one (then the axis is categorical)."""
    out = {}
    for value in values:
        try:
            out[value] = float(value)
        except ValueError:
            return {}
    return out


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
