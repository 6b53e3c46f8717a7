"""fedrule from Python: load a scenario, run it, read a run back, sweep a grid.

    import fedrule

    scenario = fedrule.load_scenario("scenarios/quickstart.yaml", {"federated.rounds": 2})
    result = fedrule.run(scenario, out="runs")
    result.metrics["tiers"]          # the per-tier table, as in metrics.json
    result.to_pandas("devices")      # every seed's devices (needs pandas)
    result.tables()["item"]          # the trained item table of the first seed
    again = fedrule.load_run(result.path)

``run`` publishes a run folder exactly as ``fedrule run`` does (the command line is this module
with console rendering) and returns a ``RunResult`` read back from it, so a result in hand and
one loaded later from disk are the same object. ``sweep`` runs a grid of settings and seeds as
``fedrule sweep`` does: each run in its own process, so plug-ins it uses must be installed
(found through their entry points), not registered at run time in this process.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from fedrule.algorithm.context import PhaseObserver
from fedrule.algorithm.hooks import RoundHook
from fedrule.errors import ConfigError, FedruleError
from fedrule.events import Events
from fedrule.report import run as run_folder
from fedrule.report.console import ConsoleEvents
from fedrule.scenario import Scenario, dump_scenario, scenario_from_dict
from fedrule.scenario import load_scenario as load_scenario_file
from fedrule.sweeps import SweepOutcome, SweepPlan, open_sweep, run_sweep
from fedrule.sweeps.runner import BASE, SPEC

Overrides = Sequence[str] | Mapping[str, Any]
Progress = Events | Callable[[str], Any] | bool | None


def load_scenario(source: str | Path | Mapping[str, Any], overrides: Overrides = ()) -> Scenario:
    """A validated scenario from a YAML file or a mapping (as a file would hold it), with
    ``overrides``: ``["train.lr=0.01"]`` as ``--set`` takes them (values read as YAML), or a
    mapping ``{"train.lr": 0.01}`` of Python values. Bad input: a one-line ``ConfigError``."""
    sets = _override_texts(overrides)
    if isinstance(source, Mapping):
        return scenario_from_dict(dict(source), sets)
    return load_scenario_file(source, sets)


def run(
    scenario: Scenario | Mapping[str, Any] | str | Path | None = None,
    out: str | Path = "runs",
    *,
    overrides: Overrides = (),
    hooks: Sequence[RoundHook] = (),
    observers: Sequence[PhaseObserver] = (),
    progress: Progress = None,
    verbose: bool = False,
    resume: str | Path | None = None,
) -> RunResult:
    """Run every seed of ``scenario`` (a ``Scenario``, a mapping or a YAML path), publish its
    run folder under ``out`` and return it read back (``RunResult``).

    ``hooks`` (``RoundHook``: after every training round) and ``observers``
    (``PhaseObserver``: after every phase of the server) reach the federated engine.
    ``progress``: an ``Events``, a callable given each line of the run's log, ``True`` for
    the console's progress bars, or None for silence. ``resume``: a partial run folder to
    continue (it keeps its own scenario: give no ``scenario``)."""
    if resume is not None:
        resume = Path(resume)
        if scenario is not None or overrides:
            raise ConfigError("a resumed run keeps its own scenario", path="resume")
        scenario = resume / "scenario.yaml"
        if not scenario.is_file():
            raise ConfigError("is not a partial run folder (no scenario.yaml)", path=str(resume))
    if scenario is None:
        raise ConfigError("no scenario given", path="scenario")
    if not isinstance(scenario, Scenario) or overrides:
        scenario = load_scenario(_raw(scenario), overrides)
    if (hooks or observers) and scenario.engine.kind != "federated":
        raise ConfigError(
            "round hooks and phase observers watch a federated run", path="engine.kind"
        )
    folder = run_folder.run_scenario(  # looked up here: a test may stand in for it
        scenario,
        out,
        _events(progress),
        verbose=verbose,
        resume=resume,
        hooks=hooks,
        observers=observers,
    )
    return RunResult(folder)


def load_run(path: str | Path) -> RunResult:
    """A finished run folder (federated or centralised) read back; a partial or missing folder
    is a one-line ``ConfigError``."""
    return RunResult(Path(path))


class RunResult:
    """A published run folder: its scenario, ``metrics`` (``metrics.json``), ``tiers`` (the
    per-tier table), ``devices`` and ``rounds`` per seed as plain records (lists of dicts),
    ``tables(seed)`` (the model file) and ``to_pandas(name)``. Read once, on first use."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise ConfigError("no such run folder", path=str(path))
        if not (path / "metrics.json").is_file() or not (path / "scenario.yaml").is_file():
            partial = path.name.endswith(".partial")
            raise ConfigError(
                "is a partial run folder, not a finished one"
                if partial
                else "is not a finished run folder (no metrics.json and scenario.yaml)",
                path=str(path),
                hint="continue it with fedrule run --resume" if partial else None,
            )
        self.path = path

    def __repr__(self) -> str:
        return f"RunResult({str(self.path)!r})"

    @cached_property
    def scenario(self) -> Scenario:
        """The run's resolved scenario (``scenario.yaml``)."""
        return load_scenario_file(self.path / "scenario.yaml")

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: the test metrics, per seed what it recorded, the tiers (federated)."""
        return json.loads((self.path / "metrics.json").read_text())

    @property
    def engine(self) -> str:
        return str(self.metrics.get("engine", "centralized"))

    @property
    def seeds(self) -> list[int]:
        return [int(seed) for seed in self.metrics.get("seeds", {})]

    @property
    def tiers(self) -> list[dict[str, Any]]:
        """Per tier (and ``all``): devices, budget, bytes and every metric's mean and spread
        over seeds (``tiers.csv``, at full precision); empty for a centralised run."""
        return list(self.metrics.get("tiers", []))

    @cached_property
    def devices(self) -> dict[int, list[dict[str, Any]]]:
        """Per seed, one record per device: tier, budget, bytes received, whether it accepted,
        answered and was evaluated, its test metrics (``devices-seed<N>.csv``); empty for a
        centralised run."""
        return {seed: _records(self.path / f"devices-seed{seed}.csv") for seed in self._fleet}

    @cached_property
    def rounds(self) -> dict[int, list[dict[str, Any]]]:
        """Per seed, its training history: a federated run's rounds (loss, devices, bytes,
        validation, privacy), a centralised run's epochs (``history-seed<N>.csv``)."""
        if self.engine == "federated":
            return {s: list(self.metrics["seeds"][str(s)].get("rounds", [])) for s in self.seeds}
        return {seed: _records(self.path / f"history-seed{seed}.csv") for seed in self.seeds}

    @property
    def _fleet(self) -> list[int]:
        return self.seeds if self.engine == "federated" else []

    def tables(self, seed: int | None = None) -> dict[str, Any]:
        """The model file of ``seed`` (default: the first): the trained ``item`` table (and
        ``user`` for a centralised run), the item and user ids, groups, the estimator's state,
        read with ``torch.load(weights_only=True)``."""
        import torch

        seed = self.seeds[0] if seed is None else seed
        path = self.path / f"model-seed{seed}.pt"
        if not path.is_file():
            raise ConfigError(f"holds no model of seed {seed}", path=str(self.path))
        return torch.load(path, weights_only=True)

    def to_pandas(self, name: str) -> Any:
        """``tiers``, ``devices``, ``rounds`` (every seed, with a ``seed`` column) or ``test``
        (the test metrics' mean and spread) as a pandas DataFrame."""
        return _frame(self._table(name), name)

    def _table(self, name: str) -> list[dict[str, Any]]:
        if name == "tiers":
            return self.tiers
        if name in ("devices", "rounds"):
            per_seed = getattr(self, name)
            return [{"seed": seed, **row} for seed, rows in per_seed.items() for row in rows]
        if name == "test":
            return [{"metric": k, **v} for k, v in self.metrics.get("test", {}).items()]
        raise ConfigError(
            f"unknown table {name!r}", path="to_pandas", hint="tiers, devices, rounds or test"
        )


def sweep(
    scenario: Scenario | Mapping[str, Any] | str | Path | None = None,
    grid: Mapping[str, Sequence[Any]] | Sequence[str] = (),
    *,
    seeds: Sequence[int] | str | None = None,
    parallel: int = 1,
    out: str | Path = "runs",
    overrides: Overrides = (),
    progress: bool | Console = False,
    resume: str | Path | None = None,
) -> SweepResult:
    """Run every combination of ``grid`` values and ``seeds`` as ``fedrule sweep`` does, at
    most ``parallel`` runs at once, in a sweep folder under ``out``; returns it read back.

    ``grid``: ``{"model.dim": [16, 32], "federated.local_lr": [0.1, 0.3]}`` (Python values), or
    ``--grid`` texts (``["model.dim=16,32"]``); linked keys ``{"a,b": [[1, 2], [3, 4]]}``.
    ``seeds``: one run per seed (default: the scenario's; or ``--seeds`` text, ``"0,1,2"``).
    ``resume``: a sweep folder to continue (finished runs kept; give nothing else).
    ``progress``: the console's progress bar (True: on stderr; or a rich ``Console``)."""
    console = (
        progress if isinstance(progress, Console) else Console(stderr=True, quiet=not progress)
    )
    sets = _override_texts(overrides)
    seed_text = seeds if seeds is None or isinstance(seeds, str) else ",".join(map(str, seeds))
    with tempfile.TemporaryDirectory() as folder:
        source = None if scenario is None else _scenario_file(scenario, Path(folder))
        resumed = None if resume is None else Path(resume)
        path, plan = open_sweep(source, _grid_texts(grid), seed_text, sets, Path(out), resumed)
    console.print(f"sweep folder: {path} ({len(plan.runs())} runs)", highlight=False)
    return SweepResult(path, run_sweep(path, plan, parallel, console))


class SweepResult:
    """A sweep folder: its finished ``runs`` (``RunResult``s by run name), ``summary`` (per
    grid cell and tier, the mean and spread over seeds: ``summary.csv`` as records),
    ``outcome`` (what this call ran: finished, skipped and failed runs; None when read back
    from disk) and ``to_pandas(name)``."""

    def __init__(self, path: Path, outcome: SweepOutcome | None = None) -> None:
        self.path, self.outcome = path, outcome

    def __repr__(self) -> str:
        return f"SweepResult({str(self.path)!r})"

    @cached_property
    def runs(self) -> dict[str, RunResult]:
        """The finished runs, in the plan's order (grid cells, then seeds)."""
        spec = json.loads((self.path / SPEC).read_text())
        names = [run.name for run in SweepPlan.from_json(spec["plan"], self.path / BASE).runs()]
        folders = [self.path / name for name in names]
        return {f.name: RunResult(f) for f in folders if (f / "metrics.json").is_file()}

    @cached_property
    def summary(self) -> list[dict[str, Any]]:
        return _records(self.path / "summary.csv")

    def to_pandas(self, name: str = "summary") -> Any:
        """``summary`` or ``runs`` (``runs.csv``: every run's status, seconds and error)."""
        if name not in ("summary", "runs"):
            raise ConfigError(f"unknown table {name!r}", path="to_pandas", hint="summary or runs")
        rows = self.summary if name == "summary" else _records(self.path / "runs.csv")
        return _frame(rows, name)


# ---------------------------------------------------------------------- helpers
def _override_texts(overrides: Overrides) -> list[str]:
    """``--set`` texts from texts, or from a mapping of Python values (as JSON, which YAML
    reads back as the same value)."""
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _grid_texts(grid: Mapping[str, Sequence[Any]] | Sequence[str]) -> list[str]:
    if isinstance(grid, Mapping):
        return [f"{key}={','.join(json.dumps(v) for v in values)}" for key, values in grid.items()]
    return [grid] if isinstance(grid, str) else list(grid)


def _raw(scenario: Scenario | Mapping[str, Any] | str | Path) -> Mapping[str, Any] | str | Path:
    """What ``load_scenario`` reads: a ``Scenario`` as its resolved mapping."""
    if isinstance(scenario, Scenario):
        from fedrule.scenario import to_plain

        return to_plain(scenario)
    return scenario


def _scenario_file(scenario: Scenario | Mapping[str, Any] | str | Path, folder: Path) -> Path:
    """A sweep's scenario as a file: a path as it is, else the resolved scenario written to
    ``folder`` (the sweep folder keeps its own copy)."""
    if isinstance(scenario, str | Path):
        return Path(scenario)
    resolved = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    path = folder / f"{resolved.name}.yaml"
    path.write_text(dump_scenario(resolved))
    return path


class _Lines:
    """Events as one line of text each, to a callable (``print``, a logger, a list's append)."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self.write = write

    def message(self, text: str) -> None:
        self.write(text)

    def phase(self, name: str, total: int | None = None) -> None:
        self.write(f"phase: {name}")

    def advance(self, info: dict | None = None) -> None:
        if info:
            self.write(
                " ".join(
                    f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
                )
            )

    def end_phase(self) -> None:
        pass


def _events(progress: Progress) -> Events | None:
    if progress is None or progress is False:
        return None
    if progress is True:
        return ConsoleEvents(Console(stderr=True))
    if all(hasattr(progress, name) for name in ("message", "phase", "advance", "end_phase")):
        return progress  # type: ignore[return-value]
    if callable(progress):
        return _Lines(progress)
    raise ConfigError("expected Events, a callable, True or None", path="progress")


def _records(path: Path) -> list[dict[str, Any]]:
    """A CSV file's rows with numbers, booleans and empty cells (NaN) read back as values."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _value(text: str) -> Any:
    if text == "":
        return math.nan
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _frame(rows: list[dict[str, Any]], name: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise FedruleError(f"to_pandas({name!r}) needs pandas", hint="pip install pandas") from None
    return pandas.DataFrame.from_records(rows)


__all__ = ["RunResult", "SweepResult", "load_run", "load_scenario", "run", "sweep"]
