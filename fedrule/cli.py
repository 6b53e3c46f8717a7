"""The ``fedrule`` command line. It parses arguments and renders results; the logic lives below."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from fedrule import interrupts
from fedrule.errors import FedruleError, Terminated, disk_error
from fedrule.lifeline import die_with_parent_from_env
from fedrule.names import SEARCHER_NAMES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate fleets of on-device recommenders with elastic (RULE) item embeddings.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from fedrule import __version__

        out.print(f"fedrule {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Simulate fleets of on-device recommenders with elastic (RULE) item embeddings."""


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a scenario key: --set train.lr=0.01 (repeatable)."),
]


@app.command()
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML file (not with --resume).")
    ] = None,
    overrides: SetOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder that receives run folders.")
    ] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show engine logs.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue a killed run from its partial folder."),
    ] = None,
) -> None:
    """Run a scenario and write a run folder (resolved scenario, metrics, tables, log)."""
    from fedrule import api
    from fedrule.errors import ConfigError
    from fedrule.report.console import ConsoleEvents, metrics_table, tier_notes, tier_table

    if resume is not None and (scenario is not None or overrides):
        raise ConfigError(
            "a resumed run keeps its own scenario", path="--resume", hint="drop SCENARIO/--set"
        )
    if scenario is None and resume is None:
        raise ConfigError("no scenario file given", path="run", hint="fedrule run SCENARIO")
    events = ConsoleEvents(err, quiet=quiet)
    result = api.run(
        scenario,
        out_dir,
        overrides=overrides or [],
        progress=events,
        verbose=verbose,
        resume=resume,
    )
    loaded, metrics = result.scenario, result.metrics
    if loaded.engine.kind == "federated":
        metric, tiers = loaded.eval.metric, metrics["tiers"]
        out.print(tier_table(tiers, metric, loaded.federated.method, width=out.width))
        for line in tier_notes(tiers, metric, loaded.search.tail_weight):
            out.print(line, highlight=False, markup=False)
    else:
        second = "recall" if f"recall@{loaded.eval.ks[0]}" in metrics["test"] else "hit"
        keys = [f"{m}@{k}" for k in loaded.eval.ks for m in (second, "ndcg")]
        keys += [f"tail/ndcg@{k}" for k in loaded.eval.ks]
        title = f"test metrics ({len(loaded.seeds)} seed(s))"
        out.print(metrics_table(title, metrics["test"], keys))
    out.print(f"run folder: {result.path}")


@app.command()
def validate(
    scenarios: Annotated[list[Path] | None, typer.Argument(help="Scenario YAML files.")] = None,
    overrides: SetOption = None,
    show: Annotated[bool, typer.Option("--show", help="Print the resolved scenario.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Print every scenario key: type, default, meaning.")
    ] = False,
) -> None:
    """Check scenario files (keys, types, values) without running anything."""
    from fedrule.errors import ConfigError
    from fedrule.scenario import dump_scenario, load_scenario
    from fedrule.scenario.explain import explain_text

    if explain:
        out.print(explain_text(), highlight=False, markup=False, soft_wrap=True)
    elif not scenarios:
        raise ConfigError("no scenario file given", path="validate", hint="or use --explain")
    for path in scenarios or []:
        loaded = load_scenario(path, overrides or [])
        out.print(f"{path}: ok")
        if show:
            out.print(dump_scenario(loaded), highlight=False)


@app.command()
def search(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    budgets: Annotated[
        list[str],
        typer.Option("--budget", "-b", help="Budget: bytes, 256KiB, 1.5MB, or a share like 1/16."),
    ],
    searcher: Annotated[
        str | None,
        typer.Option(help=f"One of {', '.join(SEARCHER_NAMES)} (default: the run's)."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Measure the chosen configurations on the data.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Which seed's checkpoint (default: first).")
    ] = None,
) -> None:
    """Search a sub-embedding for new budgets from a trained run: no training happens."""
    from rich.table import Table

    from fedrule.engine.customize import compact_blocks, customize_run
    from fedrule.errors import ConfigError
    from fedrule.units import format_bytes, parse_budget

    if searcher is not None and searcher not in SEARCHER_NAMES:
        raise ConfigError(
            f"unknown searcher {searcher!r}",
            path="--searcher",
            hint="expected one of: " + ", ".join(SEARCHER_NAMES),
        )
    parsed = [parse_budget(b, path="--budget") for b in budgets]
    results = customize_run(run_dir, parsed, searcher, verify, seed)
    table = Table(title=f"configurations for {run_dir.name}", title_justify="left")
    for column in ("budget", "bytes used", "blocks per group", "predicted", "search s"):
        table.add_column(column, justify="right" if column != "blocks per group" else "left")
    for name in results[0].verified if results and results[0].verified else []:
        table.add_column(name, justify="right")
    for r in results:
        used = f"{format_bytes(r.bytes)} / {format_bytes(r.budget_bytes)}"
        cells = [
            r.budget,
            used,
            compact_blocks(r.blocks_per_group),
            f"{r.predicted:.4f}",
            f"{r.seconds:.3f}",
        ]
        cells += [f"{v:.4f}" for v in r.verified.values()]
        table.add_row(*cells)
    out.print(table)


@app.command()
def sweep(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML file (not with --resume).")
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="A key and its values: --grid model.dim=16,32 (values read as YAML; repeatable).",
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds, one run each: 0,1,2 (default: the scenario's).")
    ] = None,
    parallel: Annotated[int, typer.Option(help="Runs at once (local processes).")] = 1,
    overrides: SetOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder that receives the sweep folder.")
    ] = Path("runs"),
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a sweep folder: finished runs kept.")
    ] = None,
) -> None:
    """Run every combination of the grid values and seeds; writes a sweep folder with every run,
    runs.csv and summary.csv (mean and spread over seeds, per tier)."""
    from fedrule import api
    from fedrule.errors import ConfigError

    if parallel < 1:
        raise ConfigError(f"expected a whole number >= 1, got {parallel}", path="--parallel")

    result = api.sweep(
        scenario,
        grid or [],
        seeds=seeds,
        parallel=parallel,
        out=out_dir,
        overrides=overrides or [],
        progress=err,
        resume=resume,
    )
    outcome = result.outcome
    out.print(
        f"sweep {result.path}: {outcome.finished} run(s) finished, {outcome.skipped} skipped, "
        f"{len(outcome.failed)} failed; summary: {result.path / 'summary.csv'}",
        highlight=False,
    )
    if outcome.failed:
        raise typer.Exit(1)


@app.command()
def report(
    folders: Annotated[
        list[Path],
        typer.Argument(help="Run folders, sweep folders or folders of runs."),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder that receives the plots and tables.")
    ] = Path("report"),
) -> None:
    """Plots (PNG) and tables (markdown, CSV) from finished runs and sweeps."""
    from fedrule.report.compare import write_report

    written = write_report(folders, out_dir)
    for path in written:
        out.print(str(path), highlight=False)


@data_app.command("info")
def data_info(
    name: Annotated[
        str | None,
        typer.Argument(help="ml-100k, ml-1m, grouplens, csv or synthetic (or use --scenario)."),
    ] = None,
    path: Annotated[str | None, typer.Option(help="File for grouplens or csv.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data cache folder.")] = None,
    sep: Annotated[
        str | None,
        typer.Option(help="csv: separator (',', ';', '|', tab or \\t); default: sniffed."),
    ] = None,
    header: Annotated[
        bool | None,
        typer.Option(
            "--header/--no-header", help="csv: first line names the columns; default: sniffed."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="csv: user column, a name or 0-based number.")
    ] = None,
    item: Annotated[
        str | None, typer.Option(help="csv: item column, a name or 0-based number.")
    ] = None,
    rating: Annotated[str | None, typer.Option(help="csv: rating column, if any.")] = None,
    timestamp: Annotated[str | None, typer.Option(help="csv: timestamp column, if any.")] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Read the data section of this scenario file (with its csv columns)."),
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Print users, items, interactions, density and interactions-per-user quantiles."""
    from fedrule.data import load_dataset
    from fedrule.errors import ConfigError

    def progress(message: str) -> None:
        err.print(message, highlight=False, markup=False, soft_wrap=True)

    options = {"sep": sep, "header": header, "user": user, "item": item}
    options |= {"rating": rating, "timestamp": timestamp}
    csv = {k: v for k, v in options.items() if v is not None}  # "2" is column 2 unless named so
    if scenario is not None:
        from fedrule.engine.prepare import load_interactions
        from fedrule.scenario import load_scenario

        given = [f"--{k}" for k in csv] + (["NAME"] if name else []) + (["--path"] if path else [])
        if given:
            raise ConfigError(
                f"{given[0]} cannot be combined with --scenario",
                path=given[0],
                hint="use --set data.csv.sep=tab and the like",
            )
        loaded = load_scenario(scenario, overrides or [])
        inter = load_interactions(loaded.data, loaded.seeds[0], progress)
    else:
        if name is None:
            raise ConfigError("no dataset given", path="data info", hint="give NAME or --scenario")
        if csv and name != "csv":
            raise ConfigError(
                f"--{next(iter(csv))} applies to the csv source only", path=f"--{next(iter(csv))}"
            )
        inter = load_dataset(
            name, path=path, data_dir=data_dir, csv=csv, progress=progress, csv_keys="--"
        )
    summary = inter.summary()
    for key, value in summary.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, dict):
            value = "  ".join(f"{k}={v:g}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.6f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        out.print(f"{key:>24}: {value}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors with exit code 2 for bad input (and for a folder that
    cannot be written), 130 on Ctrl-C, 143 on SIGTERM."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    die_with_parent_from_env()  # a sweep's run: stop with the sweep
    interrupts.install()  # SIGTERM like Ctrl-C; later signals wait for the cleanup
    try:
        code = app(args=argv, prog_name="fedrule", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C (and SIGTERM) into a returned exit code
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            return code
    except FedruleError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written (--out of report and sweep)
        failure = _unwritable(exc)
        if failure is None:
            raise
        print(f"error: {failure.one_line()}", file=sys.stderr)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        if Terminated.received:
            print("terminated (SIGTERM): no run folder was published", file=sys.stderr)
            return 143
        print("interrupted: no run folder was published", file=sys.stderr)
        return 130
    return 0


def _unwritable(exc: OSError) -> FedruleError | None:
    """A write that failed for want of space or permission, named by its folder."""
    target = Path(exc.filename) if isinstance(exc.filename, str) else None
    if target is None:
        return disk_error(exc, "?", "a file")
    folder = target if target.is_dir() else target.parent
    return disk_error(exc, folder, "there" if folder == target else target.name)


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point.

    Exits at once after the run: after a Ctrl-C, threads of Flower's simulation engine can stay
    blocked on Ray actors that are already gone (Ray itself is shut down by then), and waiting
    for them at interpreter shutdown would hang the process.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
