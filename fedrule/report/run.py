"""Run a scenario end to end and publish its run folder atomically."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from fedrule import killpoints
from fedrule.algorithm.context import PhaseObserver
from fedrule.algorithm.hooks import RoundHook
from fedrule.data.interactions import original_ids
from fedrule.data.split import SplitData
from fedrule.engine.centralized import SeedResult, run_centralized_seed, summarize
from fedrule.engine.checkpoint import clear_checkpoint
from fedrule.engine.prepare import prepare_split
from fedrule.engine.sanity import check_against_data
from fedrule.events import Events, Silent
from fedrule.metrics import BUCKETS
from fedrule.report.convergence import plot_convergence
from fedrule.report.coverage import plot_coverage
from fedrule.report.rundir import CHECKPOINTS, COMPLETE, RunDir
from fedrule.report.tables import (
    csv_text,
    dispatch_notes,
    every_device_columns,
    tier_summary,
    without_duplicate_recall,
)
from fedrule.scenario import Scenario, dump_scenario, to_plain


class _Tee:
    """Forwards events and keeps a plain-text log for the run folder."""

    def __init__(self, inner: Events) -> None:
        self.inner = inner
        self.lines: list[str] = []
        self.started = time.perf_counter()

    def _log(self, text: str) -> None:
        self.lines.append(f"[{time.perf_counter() - self.started:8.2f}s] {text}")

    def message(self, text: str) -> None:
        self._log(text)
        self.inner.message(text)

    def phase(self, name: str, total: int | None = None) -> None:
        self._log(f"phase: {name}")
        self.inner.phase(name, total)

    def advance(self, info: dict | None = None) -> None:
        if info:
            self._log(" ".join(f"{k}={_fmt(v)}" for k, v in info.items()))
        self.inner.advance(info)

    def end_phase(self) -> None:
        self.inner.end_phase()


def _fmt(value: object) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def _environment() -> dict:
    """Where the run started (read before the engine changes torch's thread count, so that a
    resumed run on the same machine records the same)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_scenario(
    scenario: Scenario,
    out_root: str | Path = "runs",
    events: Events | None = None,
    *,
    verbose: bool = False,
    resume: Path | None = None,
    hooks: Sequence[RoundHook] = (),
    observers: Sequence[PhaseObserver] = (),
) -> Path:
    """Run every seed of ``scenario``; returns the published run folder. ``resume``: a partial
    run folder (of this scenario) to continue: finished seeds are kept, the interrupted seed
    continues from its checkpoint; a complete partial (killed in its commit) is published as
    it is. ``hooks`` and ``observers`` reach every federated seed
    (``fedrule.engine.federated.run_federated_seed``).

    Every file is written atomically, ``metrics.json`` last (``fedrule.report.rundir``). A
    resumed run's files are byte for byte an uninterrupted run's, but for ``log.txt``,
    ``convergence.png`` (validation against training seconds) and the seconds: the ``seconds``
    column of ``rounds-seed*.csv`` and ``history-seed*.csv``, and ``seconds``, ``*_seconds``
    and ``*_seconds_std`` in ``metrics.json``, ``rule.json`` and ``rule.csv``."""
    tee = _Tee(events or Silent())
    environment = _environment()
    with RunDir(out_root, scenario.name, resume=resume) as run:
        if run.resumed and run.complete:
            tee.inner.message(f"{run.path} is complete: publishing it")
            return run.commit()
        if run.resumed:
            log = run.path / "log.txt"
            tee.lines = log.read_text().splitlines() if log.is_file() else []
            tee.message(f"resuming {run.path}")
        else:  # a resumed run keeps the scenario.yaml it was read from
            run.write_text("scenario.yaml", dump_scenario(scenario))
        split = prepare_split(scenario.data, scenario.seeds[0], tee.message)
        tee.message(
            f"data {split.name}: {split.n_users} users, {split.n_items} items, "
            f"{split.train.nnz} train / {split.valid.nnz} valid / {split.test.nnz} test"
        )
        check_against_data(scenario, split)
        tee.message(f"run folder (published when the run ends): {run.final}")
        dataset = {"name": split.name, "users": split.n_users, "items": split.n_items}
        dataset.update(_split_info(scenario, split))
        if scenario.engine.kind == "federated":
            metrics = _run_federated(run, scenario, split, tee, verbose, hooks, observers)
        else:
            metrics = _run_centralized(run, scenario, split, tee)
        metrics = {"engine": scenario.engine.kind, "dataset": dataset, **metrics}
        metrics["environment"] = environment
        _write_log(run, tee)
        run.write_json(COMPLETE, metrics)  # the last file: the partial is complete
        return run.commit()


def _plain(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _write_log(run: RunDir, events: Events) -> None:
    lines = getattr(events, "lines", None)
    if lines is not None:
        run.write_text("log.txt", "\n".join(lines) + "\n")


def _split_info(scenario: Scenario, split: SplitData) -> dict:
    """How the data was split, and how many users train but are not evaluated."""
    return {
        "split": scenario.data.split,
        "order": split.order,
        "split_seed": scenario.data.split_seed,
        "evaluated_users": len(split.eval_users("test")),
        "skipped_users": split.skipped_users(),
        "min_interactions_to_evaluate": scenario.data.min_interactions_to_evaluate,
    }


def _id_maps(split: SplitData) -> dict:
    """The original user and item ids of the tables' rows (int64 tensors for integer ids, else
    lists of str), readable with ``torch.load(weights_only=True)``."""
    out = {}
    for key, tokens in (("user_ids", split.user_ids), ("item_ids", split.item_ids)):
        ids = original_ids(tokens)
        out[key] = torch.from_numpy(ids) if isinstance(ids, np.ndarray) else ids
    return out


# ---------------------------------------------------------------------- centralized
def _run_centralized(run: RunDir, scenario: Scenario, split: SplitData, events: Events) -> dict:
    results: list[SeedResult] = []
    for seed in scenario.seeds:
        result = run_centralized_seed(scenario, split, seed, events)
        _drop_duplicate_recall(result, scenario, split)
        results.append(result)
        _save_centralized_seed(run, scenario, result, split)
    test = summarize([r.test for r in results])
    extra = {}
    if scenario.search.budgets:
        extra = _write_rule_table(run, scenario, results)
    run.write_text(
        "results.csv",
        csv_text(
            [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in test.items()],
            ["metric", "mean", "std"],
        ),
    )
    return {
        "seeds": {
            str(r.seed): {
                "valid": r.valid,
                "test": r.test,
                "best_epoch": r.train.best_epoch,
                "train_seconds": r.train.seconds,
                **{k: v for k, v in r.extra.items() if k in ("estimator", "rows")},
            }
            for r in results
        },
        "test": test,
        "valid": summarize([r.valid for r in results]),
        **extra,
    }


def _drop_duplicate_recall(result: SeedResult, scenario: Scenario, split: object) -> None:
    """Leave-one-out: recall@K is hit@K (one test item per user), so metrics.json and
    results.csv keep hit@K only."""
    for part in ("test", "valid"):
        values = getattr(result, part)
        keep = _reported_keys(list(values), scenario, split, part)
        setattr(result, part, {k: values[k] for k in keep})


def _reported_keys(
    keys: list[str], scenario: Scenario, split: object, part: str = "test"
) -> list[str]:
    """The metric keys a run folder records: without recall@K where every user has at most one
    item in ``part`` (leave-one-out), as it equals hit@K there; the scenario's eval.metric and
    its buckets are kept whatever they name."""
    if int(getattr(split, part).counts().max(initial=0)) > 1:
        return keys
    metric = scenario.eval.metric
    return without_duplicate_recall(keys, keep=[metric, *(f"{b}/{metric}" for b in BUCKETS)])


def _write_rule_table(run: RunDir, scenario: Scenario, results: list[SeedResult]) -> dict:
    from fedrule.report.rule_table import plot_quality_vs_memory, summarize_rows

    full_bytes = results[0].layout.full_table_bytes
    rows = summarize_rows([r.extra["rows"] for r in results], full_bytes, scenario.eval.metric)
    run.write_text("rule.csv", csv_text(rows))
    run.write_json("rule.json", rows)
    metric = scenario.eval.metric
    run.write_with("quality_vs_memory.png", lambda path: plot_quality_vs_memory(rows, metric, path))
    return {"rule": rows}


def _save_centralized_seed(
    run: RunDir, scenario: Scenario, result: SeedResult, split: SplitData
) -> None:
    run.write_text(f"history-seed{result.seed}.csv", csv_text(result.train.history))
    per_user = result.extra.get("users")
    if per_user:  # the searched configurations' test metric per user (paired comparisons)
        rows = [{"user_id": str(u)} for u in split.user_ids]
        for column, values in per_user.items():
            for row, value in zip(rows, values, strict=True):
                row[column] = value
        run.write_text(f"users-seed{result.seed}.csv", csv_text(rows))
    model = {
        "kind": "centralized",
        "scenario": _scenario_record(scenario),
        "seed": result.seed,
        "user": result.train.model.user.detach().clone(),
        "item": result.train.model.item.detach().clone(),
        **_id_maps(split),
        "group_of_item": torch.from_numpy(result.layout.group_of_item),
        **result.extra.get("checkpoint", {}),
    }
    run.write_with(f"model-seed{result.seed}.pt", partial(_save_model, model))


def _save_model(model: dict, path: Path) -> None:
    """``torch.save`` through a file object: on a full disk torch then raises the ``OSError``
    behind the failed write (one with a path saved to gives a bare ``RuntimeError``)."""
    with open(path, "wb") as handle:
        torch.save(model, handle)


def _scenario_record(scenario: Scenario) -> dict:
    """The resolved scenario as a model file stores it. Rebuilt from its JSON text so that the
    pickled bytes depend on the values only: pickle writes a string met twice as a reference
    to the first, and whether two equal strings are one object depends on where the scenario
    came from (a resumed run reads it from scenario.yaml)."""
    return json.loads(json.dumps(to_plain(scenario)))


# ---------------------------------------------------------------------- federated
def _run_federated(
    run: RunDir,
    scenario: Scenario,
    split: SplitData,
    events: Events,
    verbose: bool,
    hooks: Sequence[RoundHook] = (),
    observers: Sequence[PhaseObserver] = (),
) -> dict:
    from fedrule.engine.federated import run_federated_seed

    device_tables = []
    every_device: list[dict[int, dict[str, float]]] = []  # eval.every_device, per seed
    per_seed = {}
    keys: list[str] = []
    tier_names: tuple[str, ...] = ()
    for seed in scenario.seeds:
        done = run.checkpoint_dir / f"seed{seed}.json"
        if done.is_file():  # finished before an interruption: kept
            kept = json.loads(done.read_text())
            per_seed[str(seed)], keys = kept["summary"], kept["keys"]
            tier_names = tuple(kept["tier_names"])
            device_tables.append(kept["devices"])
            if measured := _every_device_of(kept["summary"]):
                every_device.append(measured)
            events.message(f"seed {seed}: kept from the interrupted run")
            continue
        outcome = run_federated_seed(
            scenario,
            split,
            seed,
            events,
            verbose,
            hooks,
            checkpoint_dir=run.checkpoint_dir,
            observers=observers,
        )
        res, fleet = outcome.results, outcome.fleet
        keys = _reported_keys(res.metric_keys, scenario, split)
        tier_names = fleet.tier_names
        rows = _device_rows(outcome, split, keys)
        device_tables.append(rows)
        measured_everywhere = {
            b: {k: v for k, v in m.items() if k in keys} for b, m in res.every_device.items()
        }
        if measured_everywhere:
            every_device.append(measured_everywhere)
        run.write_text(f"rounds-seed{seed}.csv", csv_text(res.rounds))
        run.write_text(f"devices-seed{seed}.csv", csv_text(rows))
        if res.coverage is not None:
            run.write_text(f"coverage-seed{seed}.csv", csv_text(res.coverage.rows()))
        item = res.item  # the method's form: per-tier one table per tier (tiers x items x d)
        offsets = {"table_offsets": torch.from_numpy(res.table_offsets)}  # hashing, qr: per tier
        estimator = {} if res.estimator is None else {"estimator": res.estimator.state_dict()}
        plain = _scenario_record(scenario)
        model = {
            "kind": "federated",
            "method": plain["federated"]["method"],
            "scenario": plain,
            "seed": seed,
            "item": torch.from_numpy(item),
            **_id_maps(split),
            "group_of_item": torch.from_numpy(res.layout.group_of_item),
            "popularity": torch.from_numpy(np.asarray(res.popularity)),
            **offsets,
            **estimator,
        }
        run.write_with(f"model-seed{seed}.pt", partial(_save_model, model))
        per_seed[str(seed)] = {
            "seconds": outcome.seconds,
            "phase_seconds": res.phase_seconds,
            "estimator": res.label_report,
            "searches": {
                str(b): {
                    "bytes": int(r.bytes),
                    "predicted": float(r.predicted),
                    "measured": float(r.measured),
                    "blocks_per_group": r.config.sum(axis=1).tolist(),
                    "seconds": float(r.seconds),
                    **(
                        {"every_device": measured_everywhere[b]} if b in measured_everywhere else {}
                    ),
                }
                for b, r in res.searches.items()
            },
            "rounds": res.rounds,
            "best_round": res.best_round,
            **outcome.extra,
        }
        keep = {"summary": per_seed[str(seed)], "keys": keys, "tier_names": list(tier_names)}
        kept = json.dumps({**keep, "devices": rows}, default=_plain)  # NaN kept as NaN
        run.write_text(f"{CHECKPOINTS}/seed{seed}.json", kept)  # the seed is done
        clear_checkpoint(run.checkpoint_dir)
        killpoints.reached("checkpoint cleared")
        _write_log(run, events)
    predicted = ["predicted"] if all("predicted" in r for t in device_tables for r in t) else []
    summary = tier_summary(device_tables, tier_names, [*keys, *predicted])
    if every_device:
        metric = scenario.eval.metric
        every_device_columns(summary, every_device, [metric, f"tail/{metric}"])
    if scenario.federated.method == "rule":
        searches = [data["searches"] for data in per_seed.values()]
        dispatch_notes(summary, searches, scenario.search.verify)
    run.write_text("tiers.csv", csv_text(summary))
    rounds = {int(seed): data["rounds"] for seed, data in per_seed.items()}
    kept = {int(seed): int(data.get("best_round") or 0) for seed, data in per_seed.items()}
    metric, mode = scenario.eval.metric, scenario.federated.mode
    run.write_with(
        "convergence.png", lambda path: plot_convergence(rounds, metric, path, kept=kept)
    )
    coverage = [run.path / f"coverage-seed{seed}.csv" for seed in scenario.seeds]
    coverage = [p for p in coverage if p.is_file()]
    drawn = run.write_with("coverage.png", lambda path: plot_coverage(coverage, path, mode))
    if coverage and drawn is None:
        events.message(
            "coverage.png not drawn: every block got 100% of its group's most-trained block "
            f"({mode} mode), a uniform map (coverage-seed*.csv has the counts)"
        )
    overall = next(r for r in summary if r["tier"] == "all")
    test = {k: {"mean": overall[k], "std": overall[f"{k}_std"]} for k in keys}
    run.write_text(
        "results.csv",
        csv_text(
            [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in test.items()],
            ["metric", "mean", "std"],
        ),
    )
    metrics = {"method": scenario.federated.method, "seeds": per_seed, "tiers": summary}
    metrics["test"] = test
    _write_tier_plot(run, scenario, metrics)
    return metrics


def _every_device_of(summary: dict) -> dict[int, dict[str, float]]:
    """A kept seed's ``eval.every_device`` figures, per budget, from its searches."""
    searches = summary.get("searches", {})
    return {int(b): s["every_device"] for b, s in searches.items() if "every_device" in s}


def _write_tier_plot(run: RunDir, scenario: Scenario, metrics: dict) -> None:
    """``tiers.png`` in the run folder: the per-tier plot of ``fedrule report``, drawn by its
    code from what the folder holds so far (the devices' rows) and ``metrics``."""
    from fedrule.report.plots import plot_tiers
    from fedrule.report.runs import Group, seeds_of

    seeds = seeds_of({"engine": "federated", **metrics}, run.path)
    group = Group(scenario.name, to_plain(scenario), [run.path], seeds)
    run.write_with("tiers.png", lambda path: plot_tiers([group], path))


def _device_rows(outcome: object, split: SplitData, keys: list[str]) -> list[dict]:
    res, fleet = outcome.results, outcome.fleet
    table = res.devices
    rows = []
    for d in range(fleet.size):
        row = {
            "device": d,
            "user_id": str(split.user_ids[fleet.user[d]]),
            "tier": fleet.tier_names[fleet.tier[d]],
            "budget_bytes": int(fleet.budget_bytes[d]),
            "bytes_received": int(table["bytes_received"][d]),
            "accepted": bool(table["accepted"][d]),
            "answered": bool(table["answered"][d]),
            "evaluated": bool(table["evaluated"][d]),
        }
        if res.estimator is not None:  # RULE: the estimator's prediction for the device's
            row["predicted"] = float(res.searches[int(fleet.budget_bytes[d])].predicted)
        for j, key in enumerate(res.metric_keys):
            if key in keys:
                row[key] = float(table["metrics"][d, j])
        rows.append(row)
    return rows
