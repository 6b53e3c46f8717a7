"""Write the documentation pages and the picture that are made from code, not typed.

- ``docs/reference/scenario.md``: every scenario key, from the schema
  (``fedrule.scenario.explain.explain_markdown``, the source of ``fedrule validate --explain``);
- ``docs/images/overview.png``: README's picture of what a run does (matplotlib).

    python docs/generate.py            # write both
    python docs/generate.py --check    # write nothing; exit 1 if the scenario page is stale

The results page and README's headline come from ``benchmarks/results.py``, what the quickstart
prints from ``benchmarks/quickstart_output.py``. ``docs/hooks.py`` runs every check when the
site is built, so ``mkdocs build --strict`` fails on a stale page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_PAGE = ROOT / "docs" / "reference" / "scenario.md"
PICTURE = ROOT / "docs" / "images" / "overview.png"


def scenario_page() -> str:
    from fedrule.scenario.explain import explain_markdown

    return explain_markdown()


def stale() -> list[str]:
    """The pages of this script that differ from what the code gives now."""
    if SCENARIO_PAGE.is_file() and SCENARIO_PAGE.read_text(encoding="utf-8") == scenario_page():
        return []
    return [str(SCENARIO_PAGE.relative_to(ROOT))]


# the picture ------------------------------------------------------------------------------------
GROUPS, BLOCKS = 6, 8  # a small supernet: item groups (most popular first) x column blocks
DEVICES = (  # name, budget, blocks kept per group (the shape a search gives small budgets)
    ("watch", "1/16 of the table", (3, 2, 1, 1, 1, 1)),
    ("phone", "1/4 of the table", (8, 6, 4, 3, 2, 1)),
    ("TV", "the full table", (8, 8, 8, 8, 7, 7)),
)


def draw_overview(path: Path) -> None:
    """A server training one elastic item table with a fleet, and the sub-table each device
    receives for its memory budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

    blue, grey, ink = "#3b75af", "#e4e4e4", "#222222"
    fig, ax = plt.subplots(figsize=(12, 4.6), dpi=150)
    ax.set_xlim(0, 24)
    ax.set_ylim(0, 9.2)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, fill: str = "white") -> None:
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.25", fc=fill, ec=ink, lw=1
            )
        )

    def grid(x: float, y: float, cell: float, kept: tuple[int, ...]) -> None:
        """Groups as rows (most popular on top), blocks as columns; kept blocks are blue."""
        for g, n in enumerate(kept):
            for b in range(BLOCKS):
                colour = blue if b < n else grey
                ax.add_patch(
                    Rectangle(
                        (x + b * cell, y + (GROUPS - 1 - g) * cell),
                        cell * 0.9,
                        cell * 0.9,
                        fc=colour,
                        ec="none",
                    )
                )

    def arrow(start: tuple[float, float], end: tuple[float, float], style: str = "-|>") -> None:
        ax.add_patch(
            FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, lw=1.2, color=ink)
        )

    # the scenario
    box(0.2, 3.3, 3.6, 2.6, fill="#f6f6f6")
    ax.text(2.0, 5.3, "scenario.yaml", ha="center", fontsize=10, weight="bold")
    ax.text(
        2.0, 4.55, "data, fleet, budgets,\ntraining, search", ha="center", va="center", fontsize=8.5
    )
    ax.text(2.0, 3.7, "fedrule run", ha="center", fontsize=8.5, family="monospace")
    arrow((3.9, 4.6), (4.9, 4.6))

    # the server with its elastic supernet
    box(5.0, 0.9, 7.0, 7.6)
    ax.text(8.5, 7.95, "server", ha="center", fontsize=11, weight="bold")
    ax.text(8.5, 7.45, "one elastic item table (the supernet)", ha="center", fontsize=8.5)
    grid(7.55, 4.2, 0.45, (BLOCKS,) * GROUPS)
    ax.text(7.4, 5.55, "item groups,\npopular first", ha="right", va="center", fontsize=7.5)
    ax.text(9.35, 3.85, "blocks of columns", ha="center", va="top", fontsize=7.5)
    steps = (
        "1  count item popularity",
        "2  train the supernet: FedAvg rounds",
        "3  fit an estimator on device labels",
        "4  search a sub-table per budget",
    )
    for i, step in enumerate(steps):
        ax.text(5.4, 3.05 - 0.5 * i, step, fontsize=8.5, va="center")

    # the devices, each with what it receives
    for i, (name, budget, kept) in enumerate(DEVICES):
        y = 6.3 - 2.75 * i
        box(16.4, y, 7.4, 2.3)
        ax.text(16.75, y + 1.75, name, fontsize=10, weight="bold", va="center")
        ax.text(16.75, y + 1.2, budget, fontsize=8, va="center")
        ax.text(
            16.75, y + 0.55, "trains, labels and\ntests on its own data", fontsize=7.5, va="center"
        )
        grid(21.15, y + 0.3, 0.29, kept)
        arrow((12.1, 4.9 + 0.1 * (1 - i)), (16.3, y + 1.15), "<|-|>")
    ax.text(14.2, 7.1, "Flower messages,\nsimulated on Ray", ha="center", fontsize=8)
    ax.text(
        13.7,
        0.95,
        "down: a sub-table that\nfits the budget\nup: updates, labels,\ntest metrics",
        ha="center",
        fontsize=8,
    )
    ax.text(
        12.0,
        0.2,
        "results: quality, bytes and time per device tier",
        ha="center",
        fontsize=9,
        style="italic",
    )
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; 1 if stale")
    args = parser.parse_args()
    if args.check:
        if pages := stale():
            sys.exit(f"stale: {', '.join(pages)}; run python docs/generate.py")
        print(f"{SCENARIO_PAGE.relative_to(ROOT)} is current")
        return
    SCENARIO_PAGE.parent.mkdir(parents=True, exist_ok=True)
    SCENARIO_PAGE.write_text(scenario_page(), encoding="utf-8")
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    draw_overview(PICTURE)
    print(f"wrote {SCENARIO_PAGE.relative_to(ROOT)} and {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
