"""The RULE experiment table (mean and spread over seeds) and its plot of quality vs memory."""

from __future__ import annotations

from pathlib import Path

from fedrule.report.tables import mean_std

GROUP = ("method", "searcher", "budget")


def summarize_rows(
    per_seed_rows: list[list[dict]], full_table_bytes: int, metric: str
) -> list[dict]:
    """Rows grouped by (method, searcher, budget), every number averaged over seeds (``*_std``
    holds the spread); ``kept`` is the share of plain full-size BPR-MF's ``metric`` retained."""
    groups: dict[tuple, list[dict]] = {}
    for rows in per_seed_rows:
        for row in rows:
            groups.setdefault(tuple(row[k] for k in GROUP), []).append(row)
    out = []
    for key, rows in groups.items():
        summary: dict[str, object] = dict(zip(GROUP, key, strict=True))
        numeric = [k for k, v in rows[0].items() if k not in GROUP and isinstance(v, int | float)]
        for name in numeric:
            mean, std = mean_std(float(r[name]) for r in rows)
            summary[name] = mean
            if name not in ("budget_bytes",):
                summary[f"{name}_std"] = std
        summary["memory_share"] = float(summary["bytes"]) / full_table_bytes
        summary["seeds"] = len(rows)
        out.append(summary)
    plain = next((r for r in out if r["method"] == "plain-full"), None)
    for row in out:
        for name in (metric, f"tail/{metric}"):
            if plain is not None and plain.get(name):
                row[f"kept_{name.replace('/', '_')}"] = float(row[name]) / float(plain[name])
    out.sort(key=lambda r: (str(r["method"]), str(r["searcher"]), float(r["budget_bytes"])))
    return out


def plot_quality_vs_memory(rows: list[dict], metric: str, path: Path) -> None:
    """One line per method (and searcher): ``metric`` against the memory share, log x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, name in zip(axes, (metric, f"tail/{metric}"), strict=True):
        lines: dict[str, list[dict]] = {}
        for row in rows:
            label = row["method"] + (f" ({row['searcher']})" if row["searcher"] else "")
            lines.setdefault(label, []).append(row)
        for label, points in sorted(lines.items()):
            points.sort(key=lambda r: r["memory_share"])
            x = [p["memory_share"] for p in points]
            y = [p[name] for p in points]
            err = [p.get(f"{name}_std", 0.0) for p in points]
            if len({p["memory_share"] for p in points}) == 1:  # one size: plain-full, popularity
                ax.axhline(y[0], linestyle="--", color="grey", label=label)
            else:
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("memory (share of the full item table)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
