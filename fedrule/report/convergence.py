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
) -> bool:
    """One line per seed: ``valid_<metric>`` against the round and the cumulative seconds.
    ``reference`` (e.g. the centralised figure) is drawn as a dashed line. Returns False (and
    writes nothing) when no round was validated."""
    key = f"valid_{metric}"
    series = {seed: validation_points(rounds, key) for seed, rounds in rounds_per_seed.items()}
    series = {seed: points for seed, points in series.items() if points}
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for seed, points in sorted(series.items()):
        rounds, seconds, values = zip(*points, strict=True)
        axes[0].plot(rounds, values, marker="o", label=f"seed {seed}")
        axes[1].plot(seconds, values, marker="o", label=f"seed {seed}")
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
