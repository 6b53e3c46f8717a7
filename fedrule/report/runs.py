"""The runs a report reads: run folders found, grouped and labelled, and what each seed recorded.

Runs are grouped by their resolved scenario without ``name`` and ``seeds``: the runs of one sweep
cell (one per seed) form one group, and every figure is a mean over the group's seeds with the
spread (sample standard deviation) as error bars. A group is labelled by the scenario keys in
which the groups differ (``dim=8, lr=0.05``), or by the scenario's name when there is one group.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from fedrule.errors import ConfigError
from fedrule.report.tables import evaluated_device


@dataclass
class Seed:
    """One seed of one run: what the report reads of it."""

    seed: int
    engine: str
    test: dict[str, float] = field(default_factory=dict)
    tiers: dict[str, dict[str, float]] = field(default_factory=dict)  # tier -> metric -> mean
    budgets: dict[str, float] = field(default_factory=dict)  # tier -> budget bytes
    rounds: list[dict[str, float]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # centralised RULE rows
    estimator: dict = field(default_factory=dict)
    seconds: float = float("nan")
    audit_test: dict[str, float] = field(default_factory=dict)  # the test-rank attack
    devices: list[dict] = field(default_factory=list)  # federated: devices-seed<N>.csv
    users: list[dict] = field(default_factory=list)  # centralised RULE: users-seed<N>.csv


@dataclass
class Group:
    label: str
    scenario: dict
    runs: list[Path] = field(default_factory=list)
    seeds: list[Seed] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.scenario.get("eval", {}).get("metric", "ndcg@10"))

    @property
    def engine(self) -> str:
        return str(self.scenario.get("engine", {}).get("kind", "centralized"))

    @property
    def method(self) -> str:
        """The method a federated group stands for (centralised rows name their own)."""
        federated = self.scenario.get("federated", {})
        method = federated.get("method", "rule")
        if method != "rule":  # the baselines: nested, per-tier
            return f"{method}-federated"
        return f"rule-federated-{federated.get('mode', 'full')}"


def find_runs(folders: list[Path]) -> list[Path]:
    """Run folders (with ``metrics.json``) given directly, one level below a given folder (a
    sweep folder, a ``runs/`` folder), or in the sweep folders of a given folder."""
    runs: list[Path] = []
    for folder in folders:
        if (folder / "metrics.json").is_file():
            runs.append(folder)
            continue
        if not folder.is_dir():
            raise ConfigError("no such folder", path=str(folder))
        found = sorted(_runs_in(folder))
        for sweep in sorted(p for p in folder.iterdir() if (p / "sweep.json").is_file()):
            found += sorted(_runs_in(sweep))
        if not found:
            raise ConfigError("holds no finished run (no metrics.json)", path=str(folder))
        runs.extend(found)
    return list(dict.fromkeys(runs))


def _runs_in(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "metrics.json").is_file()
    ]


def load_groups(runs: list[Path]) -> list[Group]:
    """Runs grouped by scenario (without name and seeds), each labelled."""
    groups: dict[str, Group] = {}
    for run in runs:
        scenario = yaml.safe_load((run / "scenario.yaml").read_text()) or {}
        key_scenario = {k: v for k, v in scenario.items() if k not in ("name", "seeds")}
        key = json.dumps(key_scenario, sort_keys=True, default=str)
        group = groups.setdefault(key, Group("", scenario))
        group.runs.append(run)
        group.seeds.extend(_read_seeds(run))
    out = list(groups.values())
    _label(out)
    return out


def _label(groups: list[Group]) -> None:
    flat = [
        _flatten({k: v for k, v in g.scenario.items() if k not in ("name", "seeds")})
        for g in groups
    ]
    keys = sorted(
        {k for f in flat for k in f if len({json.dumps(x.get(k), default=str) for x in flat}) > 1}
    )
    last = [k.rsplit(".", 1)[-1] for k in keys]
    short = [s if last.count(s) == 1 else k for s, k in zip(last, keys, strict=True)]
    names = [re.sub(r"-s\d+$", "", str(g.scenario.get("name", g.runs[0].name))) for g in groups]
    common = {  # per key, its most common value (labels then show only departures from it)
        k: Counter(json.dumps(f.get(k), default=str) for f in flat).most_common(1)[0][0]
        for k in keys
    }
    for group, values, name in zip(groups, flat, names, strict=True):
        shown = list(zip(short, keys, strict=True))
        if len(keys) > 4:  # only where this group leaves the most common value
            shown = [
                (s, k) for s, k in shown if json.dumps(values.get(k), default=str) != common[k]
            ]
        if shown and len(shown) <= 4:
            group.label = ", ".join(f"{s}={_short(values.get(k))}" for s, k in shown)
        elif keys and not shown:
            group.label = "the most common settings"
        elif names.count(name) > 1:
            group.label = f"{name} ({group.runs[0].name})"
        else:
            group.label = name


def _short(value: object) -> str:
    return json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)


def _flatten(obj: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_seeds(run: Path) -> list[Seed]:
    return seeds_of(json.loads((run / "metrics.json").read_text()), run)


def seeds_of(metrics: dict, run: Path) -> list[Seed]:
    """The seeds of a run from its ``metrics.json`` content and the per-seed files in ``run``
    (also a partial run folder, before its ``metrics.json`` is written)."""
    engine = metrics.get("engine", "centralized")
    out = []
    for name, data in metrics.get("seeds", {}).items():
        seed = Seed(int(name), engine)
        seed.estimator = data.get("estimator") or {}
        seed.audit_test = {k: float(v) for k, v in (data.get("audit_test") or {}).items()}
        seed.seconds = float(data.get("seconds", data.get("train_seconds", float("nan"))) or 0)
        if engine == "federated":
            seed.rounds = _read_csv(run / f"rounds-seed{name}.csv")
            devices = seed.devices = _read_csv(run / f"devices-seed{name}.csv")
            keys = list(metrics.get("test", {}))
            order = [str(t["tier"]) for t in metrics.get("tiers", [])]  # the fleet's order
            order += [str(d["tier"]) for d in devices]
            for tier in [*dict.fromkeys(t for t in order if t != "all"), "all"]:
                rows = [d for d in devices if tier == "all" or d["tier"] == tier]
                rows = [d for d in rows if evaluated_device(d)]
                seed.tiers[tier] = {
                    k: float(np.nanmean([r[k] for r in rows])) if rows else math.nan for k in keys
                }
                if tier != "all" and rows:
                    seed.budgets[tier] = float(rows[0]["budget_bytes"])
            _add_every_device(seed, data.get("searches") or {})
            seed.test = seed.tiers.get("all", {})
        else:
            seed.test = {k: float(v) for k, v in (data.get("test") or {}).items() if v is not None}
            seed.rows = data.get("rows") or []
            users = run / f"users-seed{name}.csv"
            seed.users = _read_csv(users) if users.is_file() else []
        out.append(seed)
    return out


def _add_every_device(seed: Seed, searches: dict) -> None:
    """``eval.every_device``: each tier's configuration tested on every device, as the tier's
    ``<metric>_every_device`` figures (from the run's searches, keyed by budget)."""
    for tier, budget in seed.budgets.items():
        measured = searches.get(str(int(budget)), {}).get("every_device") or {}
        seed.tiers[tier] |= {f"{k}_every_device": float(v) for k, v in measured.items()}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> object:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def final_epsilon(seed: Seed) -> float:
    """A seed's ε after training: after the final labelling where the estimator recorded one,
    else the last round's; NaN for a run without privacy accounting."""
    if seed.estimator.get("epsilon") is not None:  # after the final (possibly noised) labels
        return float(seed.estimator["epsilon"])
    return last_value(seed, "epsilon")


def _round_values(seed: Seed, key: str) -> list[float]:
    """``key``'s recorded values over a seed's rounds (absent and NaN cells left out)."""
    values = (r.get(key) for r in seed.rounds)
    return [v for v in values if isinstance(v, float) and not math.isnan(v)]


def last_value(seed: Seed, key: str) -> float:
    """``key``'s last recorded value over a seed's rounds (NaN if none)."""
    values = _round_values(seed, key)
    return values[-1] if values else math.nan


def round_mean(seed: Seed, key: str) -> float:
    """``key``'s mean over the rounds that recorded it (NaN if none)."""
    values = _round_values(seed, key)
    return float(np.mean(values)) if values else math.nan


def recorded(group: Group, name: str) -> bool:
    """Whether any seed of ``group`` recorded metric ``name`` (runs under leave-one-out no
    longer record recall@K, the same number as hit@K there)."""
    return any(name in t for s in group.seeds for t in [s.test, *s.tiers.values()])
