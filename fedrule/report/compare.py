"""``fedrule report``: plots (PNG) and tables (markdown, CSV) from finished runs and sweeps.

Runs are grouped by scenario (``fedrule.report.runs``); every figure is a mean over a group's
seeds with the spread as error bars.

Files (each only when the runs hold its data): ``quality_vs_memory.png`` (+ ``.csv``/``.md``),
``tiers.png`` (+ ``.csv``/``.md``), ``curves.png``, ``traffic.png``, ``estimator.png``,
``privacy.png``, ``audit.png`` (+ ``audit.csv``/``.md``), ``speed.csv``/``.md`` (rounds and
seconds to 95% of the best validation), ``tradeoff.png`` (overall against tail
quality per budget, for runs that differ in ``search.tail_weight``), ``summary.csv``/``summary.md``
and ``report.md``, an index of them all.
"""

from __future__ import annotations

from pathlib import Path

from fedrule.errors import ConfigError
from fedrule.report.group_tables import (
    UPLOAD_ATTACKS,
    audit_rows,
    memory_rows,
    summary_rows,
    tradeoff_rows,
)
from fedrule.report.paired import paired_columns, paired_rows
from fedrule.report.plots import (
    plot_audit,
    plot_curves,
    plot_estimator,
    plot_memory,
    plot_privacy,
    plot_tiers,
    plot_tradeoff,
    plot_traffic,
)
from fedrule.report.runs import Group, find_runs, load_groups
from fedrule.report.speed import speed_columns, speed_rows
from fedrule.report.tables import csv_text, markdown_table


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
