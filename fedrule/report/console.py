"""Console rendering of engine events (progress bars per phase) and result tables, with rich."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class ConsoleEvents:
    """Shows one progress bar per phase and prints messages above it."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: int | None = None
        self.name, self.total, self.done = "", None, 0

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[dim]·[/dim] {text}", highlight=False)

    def phase(self, name: str, total: int | None = None) -> None:
        self.end_phase()
        self.name, self.total, self.done = name, total, 0
        if self.quiet or not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(name, total=total, info="")

    def advance(self, info: dict | None = None) -> None:
        text = "  ".join(f"{k}={_short(v)}" for k, v in (info or {}).items() if k != "epoch")
        self.done += 1
        if not self.quiet and not self.console.is_terminal:  # a log file: at most ~20 lines
            if _log_step(self.done, self.total):
                total = f"/{self.total}" if self.total else ""
                self.console.print(f"{self.name} {self.done}{total}  {text}", highlight=False)
            return
        if self.progress is None or self.task is None:
            return
        self.progress.update(self.task, advance=1, info=text)

    def end_phase(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.task = None, None


LOG_LINES = 20
"""The most progress lines a phase prints when the output is not a terminal (a log file)."""


def _log_step(done: int, total: int | None) -> bool:
    """Whether step ``done`` (1-based) of a phase gets a line: every ceil(total / 20)-th step
    and the last; without a total, steps 1..10 then every power of two."""
    if total:
        return done == total or done % -(-total // LOG_LINES) == 0
    return done <= LOG_LINES // 2 or done & (done - 1) == 0


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_table(title: str, summary: Mapping[str, Mapping[str, float]], keys: list[str]) -> Table:
    """A table of mean ± std for the given metric keys."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("± std", justify="right")
    for key in keys:
        if key in summary:
            table.add_row(key, f"{summary[key]['mean']:.4f}", f"{summary[key]['std']:.4f}")
    return table


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Mapping[str, object]], str]
    keep: int  # the lower, the sooner it is left out of a narrow table
    left: bool = False


def tier_table(
    tiers: list[Mapping[str, object]],
    metric: str,
    method: str = "rule",
    width: int | None = None,
) -> Table:
    """Per-tier test quality of a fleet run (``tiers``: the rows of ``tiers.csv``), headed by
    ``metric`` (the run's eval.metric): with ``eval.every_device`` the tier's configuration
    tested on every device (the comparison across tiers) first, then the mean over the tier's
    own evaluated devices (± the spread over seeds when there are several), the hit rate (or
    recall, where recorded) at its K, the estimator's prediction, budget and bytes received,
    devices, evaluated devices (a device with too few interactions has no test item) and
    refused payloads. ``width``: the widest the table may be; secondary columns are left out
    (named in ``table.caption``) until it fits, so that the metric is never cut short.
    ``method``: the run's federated.method."""
    columns = _tier_columns(tiers, metric)
    dropped: list[str] = []
    table = _table(tiers, columns, method, dropped)
    while width is not None and _width(table) > width and len(columns) > 2:
        weakest = min(columns[1:], key=lambda c: c.keep)
        columns = [c for c in columns if c is not weakest]
        dropped.insert(0, weakest.header.replace("\n", " "))
        table = _table(tiers, columns, method, dropped)
    return table


def _tier_columns(tiers: list[Mapping[str, object]], metric: str) -> list[_Column]:
    from fedrule.units import format_bytes

    seeds = max((int(row.get("seeds", 1)) for row in tiers), default=1)

    def value(key: str) -> Callable[[Mapping[str, object]], str]:
        def cell(row: Mapping[str, object]) -> str:
            if key not in row or row[key] is None:
                return "-"
            spread = row.get(f"{key}_std")
            text = f"{float(row[key]):.4f}"
            return text + (f" ± {float(spread):.4f}" if seeds > 1 and spread is not None else "")

        return cell

    def budget(row: Mapping[str, object]) -> str:
        given = row["budget_bytes"]
        return format_bytes(float(given)) if isinstance(given, int | float) else "mixed"

    k = metric.partition("@")[2]
    second = f"recall@{k}" if any(f"recall@{k}" in row for row in tiers) else f"hit@{k}"
    every = f"{metric}_every_device"
    on_every_device = any(every in row for row in tiers)
    columns = [_Column("tier", lambda row: str(row["tier"]), 100, left=True)]
    if on_every_device:  # eval.every_device: the tier's configuration on every device
        columns.append(_Column(f"{metric}\nevery device", value(every), 90))
        columns.append(_Column(f"{metric}\nown devices", value(metric), 80))
    else:
        columns.append(_Column(metric, value(metric), 90))
    columns.append(_Column("budget", budget, 70))
    columns.append(
        _Column("received", lambda row: format_bytes(float(row["bytes_received_mean"])), 45)
    )
    if metric != second:
        columns.append(_Column(second, value(second), 60))
    if bool(tiers) and all("predicted" in row for row in tiers):  # the estimator's, on valid
        columns.append(_Column("predicted\n(valid)", lambda r: f"{float(r['predicted']):.4f}", 50))
    refused = any(int(row.get("refused", 0)) for row in tiers)
    columns.append(_Column("devices", lambda row: str(row["devices"]), 30))
    columns.append(_Column("evaluated", lambda row: str(row.get("evaluated", "-")), 20))
    columns.append(_Column("refused", lambda row: str(row["refused"]), 45 if refused else 10))
    return columns


def _table(
    tiers: list[Mapping[str, object]], columns: list[_Column], method: str, dropped: list[str]
) -> Table:
    title = "test metrics per device tier" + ("" if method == "rule" else f" ({method})")
    table = Table(title=title, title_justify="left", caption_justify="left")
    for column in columns:
        table.add_column(column.header, justify="left" if column.left else "right", no_wrap=True)
    for row in tiers:
        table.add_row(*(column.cell(row) for column in columns))
    if dropped:
        table.caption = f"left out to fit: {', '.join(dropped)} (every column: tiers.csv)"
    return table


def _width(table: Table) -> int:
    """The width ``table`` needs to show every cell on one line."""
    console = Console(width=10_000, file=io.StringIO())
    return Measurement.get(console, console.options, table).maximum


def tier_notes(
    tiers: list[Mapping[str, object]], metric: str, tail_weight: float = 0.0
) -> list[str]:
    """What the tier table's columns mean, one line each: the tiers hold different users; the
    prediction is the estimator's, on validation (of the search objective: ``metric``, or with
    search.tail_weight w its blend with the tail figure); each tier whose configuration is
    smaller than its budget allows, and why (the rows' ``note``)."""
    per_tier = [row for row in tiers if row["tier"] != "all"]
    if not per_tier:
        return []
    lines = []
    every = any(f"{metric}_every_device" in row for row in tiers)
    total = next((row["devices"] for row in tiers if row["tier"] == "all"), None)
    if every:
        lines.append(
            f"every device: each tier's configuration tested on all {total} devices; compare "
            "tiers by this column."
        )
    if len(per_tier) > 1:
        where = "own devices" if every else metric
        hint = "" if every else " (eval.every_device: true tests each on every device)"
        lines.append(
            f"{where}: the mean over the tier's own devices, one test item each; the tiers hold "
            f"different users, so this column does not rank their configurations{hint}."
        )
    if all("predicted" in row for row in tiers):
        objective = metric if not tail_weight else f"{1 - tail_weight:g}·{metric} + "
        objective += f"{tail_weight:g}·tail/{metric}" if tail_weight else ""
        lines.append(
            f"predicted (valid): the estimator's prediction of the configuration's validation "
            f"{objective} (what the search maximises), not a test figure nor calibrated to one: "
            "test items are each user's last and usually score lower."
        )
    lines += [f"{row['tier']}: {row['note']}" for row in per_tier if row.get("note")]
    return lines
