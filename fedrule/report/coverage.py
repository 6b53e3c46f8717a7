"""``coverage.png``: how much training each (item group, block) of the elastic table received,
as a share of its group's best-trained block, averaged over a run's seeds (from the
``coverage-seed*.csv`` files; ``fedrule.algorithm.coverage`` counts them)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_shares(path: Path) -> np.ndarray:
    """The share column of one ``coverage-seed*.csv`` as a groups x blocks array."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    groups = 1 + max(int(r["group"]) for r in rows)
    blocks = 1 + max(int(r["block"]) for r in rows)
    share = np.zeros((groups, blocks))
    for r in rows:
        share[int(r["group"]), int(r["block"])] = float(r["share"])
    return share


def plot_coverage(paths: list[Path], out: Path, mode: str) -> bool:
    """A groups x blocks heat map of the mean share over ``paths``; False (nothing written)
    without any file, or when every block has a share of 1 (full mode: every device trains
    every block, so the map would be one solid square and say nothing)."""
    if not paths:
        return False
    share = np.mean([read_shares(p) for p in paths], axis=0)
    if np.allclose(share, 1.0):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    image = ax.imshow(share, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="share of the group's most-trained block")
    ax.set_xlabel("block")
    ax.set_ylabel("item group (0: most popular)")
    seeds = f"{len(paths)} seed{'s' if len(paths) > 1 else ''}"
    ax.set_title(f"Training received per block ({mode} mode, {seeds})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True
