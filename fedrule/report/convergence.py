"""``convergence.png``: validation quality of a federated run against rounds and seconds."""

from __future__ import annotations

import math
from pathlib import Path


def validation_points(rounds: list[dict], key: str) -> list[tuple[int, float, float]]:
    """(round, training seconds until its end, value) of each round that recorded ``key``: the
    seconds are the rounds' ``seconds`` summed, validated or not."""
    elapsed, points = 0.0, []
    for record in rounds:
        elapsed += float(record.get("seconds", 0.0))
        value = record.get(key)
        if value is not None and not math.isnan(float(value)):
            points.append((int(record["round"]), elapsed, float(value)))
    return points


def plot_convergence(
    rounds_per_seed: dict[int, list[dict]],
    metric: str,
    path: Path,
    reference: float | None = None,
    kept: dict[int, int] | None = None,
) -> bool:
    """One line per seed: ``valid_<metric>`` against the round and the cumulative seconds.
    ``reference`` (e.g. the centralised figure) is drawn as a dashed line; ``kept`` (seed ->
    the round whose table the run kept, 0: the last round) is marked with a star where that
    round was validated, else with a dotted vertical line. Returns False (and writes nothing)
    when no round was validated."""
    key = f"valid_{metric}"
    series = {seed: validation_points(rounds, key) for seed, rounds in rounds_per_seed.items()}
    series = {seed: points for seed, points in series.items() if points}
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for seed, points in sorted(series.items()):
        rounds, seconds, values = zip(*points, strict=True)
        (line,) = axes[0].plot(rounds, values, marker="o", label=f"seed {seed}")
        axes[1].plot(seconds, values, marker="o", label=f"seed {seed}")
        if kept is not None and seed in kept:
            _mark_kept(axes, rounds_per_seed[seed], points, kept[seed], line.get_color())
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax, xlabel in zip(axes, ("training round", "training time (s)"), strict=True):
        if reference is not None:
            ax.axhline(reference, linestyle="--", color="grey", label="centralised")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"validation {metric}")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Federated training: validation {metric} (full configuration)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def kept_point(
    rounds: list[dict], points: list[tuple[int, float, float]], kept: int
) -> tuple[int, float, float | None]:
    """The kept round (``kept``; 0: the last round), the training seconds until its end and its
    validation value (None when that round was not validated)."""
    kept = kept or (int(rounds[-1]["round"]) if rounds else 0)
    for number, seconds, value in points:
        if number == kept:
            return kept, seconds, value
    elapsed = sum(float(r.get("seconds", 0.0)) for r in rounds if int(r["round"]) <= kept)
    return kept, elapsed, None


def _mark_kept(
    axes: object, rounds: list[dict], points: list[tuple], kept: int, color: str
) -> None:
    """A star on the kept round's validation point (both panels), or a dotted line at that
    round when it was not validated."""
    number, seconds, value = kept_point(rounds, points, kept)
    for ax, x in zip(axes, (number, seconds), strict=True):
        if value is None:
            ax.axvline(x, linestyle=":", color=color, label=f"kept: round {number} (not validated)")
        else:
            ax.plot(
                [x],
                [value],
                marker="*",
                markersize=16,
                color=color,
                markeredgecolor="black",
                linestyle="none",
                label=f"kept: round {number}",
                zorder=5,
            )
