"""Console rendering of engine events (progress bars per phase) and result tables, with rich."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
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


def tier_table(tiers: list[Mapping[str, object]], k: str, method: str = "rule") -> Table:
    """Per-tier test quality of a fleet run: devices, and how many of them were evaluated (a
    device with too few interactions has no test item); the mean over the evaluated devices (±
    the spread over seeds when there are several). ``method``: the run's federated.method."""
    from fedrule.units import format_bytes

    title = "test metrics per device tier" + ("" if method == "rule" else f" ({method})")
    table = Table(title=title, title_justify="left")
    for column in ("tier", "devices", "evaluated", "budget", "received", "refused"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for name in (f"recall@{k}", f"ndcg@{k}"):
        table.add_column(name, justify="right")
    predicted = bool(tiers) and all("predicted" in row for row in tiers)
    if predicted:  # the estimator's prediction of the objective, next to the measured quality
        table.add_column("predicted", justify="right")
    every = f"ndcg@{k}_every_device"
    on_every_device = any(every in row for row in tiers)
    if on_every_device:  # eval.every_device: the tier's configuration on every device
        table.add_column("every device", justify="right")
    for row in tiers:
        budget = row["budget_bytes"]
        budget_text = format_bytes(float(budget)) if isinstance(budget, int | float) else "mixed"
        cells = [
            str(row["tier"]),
            str(row["devices"]),
            str(row.get("evaluated", "-")),
            budget_text,
            format_bytes(float(row["bytes_received_mean"])),
            str(row["refused"]),
        ]
        for name in (f"recall@{k}", f"ndcg@{k}"):
            spread = f" ± {row[name + '_std']:.4f}" if row.get("seeds", 1) > 1 else ""
            cells.append(f"{row[name]:.4f}{spread}")
        if predicted:
            cells.append(f"{row['predicted']:.4f}")
        if on_every_device and every not in row:  # "all", or a tier of several budgets
            cells.append("-")
        elif on_every_device:
            spread = f" ± {row[every + '_std']:.4f}" if row.get("seeds", 1) > 1 else ""
            cells.append(f"{row[every]:.4f}{spread}")
        table.add_row(*cells)
    return table
