"""What a sweep runs: grid axes parsed from ``--grid key=v1,v2``, seeds, and one run per cell and
seed, each with a stable name derived from its grid values and seed."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from fedrule.errors import ConfigError
from fedrule.scenario import load_scenario
from fedrule.scenario.load import apply_overrides, read_raw
from fedrule.scenario.schema import Scenario
from fedrule.scenario.strict_yaml import parse_yaml
from fedrule.scenario.validate import build

RESERVED = ("seeds", "name")
"""Keys a sweep sets itself on every run (``--seeds``, the run name)."""


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` option: a dotted scenario key and its values, as given (YAML text).

    Linked keys ``k1,k2`` take values that are lists of one value per key (``[v1,v2]``): the
    axis sweeps those pairs together, not their cross product."""

    key: str
    values: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.key.split(","))

    def pairs(self, value: str) -> tuple[tuple[str, str], ...]:
        """The (key, value text) settings of one of the axis's values."""
        if len(self.keys) == 1:
            return ((self.key, value),)
        inner = value.strip()[1:-1]  # a YAML flow list, checked by parse_grid
        parts = tuple(v.strip() for v in _split_top_level(inner))
        return tuple(zip(self.keys, parts, strict=True))


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a grid cell (one value per axis) and one seed."""

    cell: str
    values: tuple[tuple[str, str], ...]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.cell}-s{self.seed}"

    def overrides(self) -> list[str]:
        """The ``--set`` overrides of this run, after the sweep's own ``--set`` ones."""
        sets = [f"{key}={value}" for key, value in self.values]
        return [*sets, f"seeds=[{self.seed}]", f"name={self.name}"]


@dataclass(frozen=True)
class SweepPlan:
    """A scenario file, the sweep's ``--set`` overrides, its grid axes and seeds."""

    scenario: Path
    sets: tuple[str, ...] = ()
    axes: tuple[GridAxis, ...] = ()
    seeds: tuple[int, ...] = ()
    cells: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = field(init=False)

    def __post_init__(self) -> None:
        combos = itertools.product(*[axis.values for axis in self.axes])
        settings = [
            tuple(p for axis, v in zip(self.axes, combo, strict=True) for p in axis.pairs(v))
            for combo in combos
        ]
        keys = [k for axis in self.axes for k in axis.keys]
        names = _cell_names(keys, [tuple(v for _, v in pairs) for pairs in settings])
        cells = tuple(zip(names, settings, strict=True))
        object.__setattr__(self, "cells", cells)

    def runs(self) -> list[SweepRun]:
        return [SweepRun(cell, values, seed) for cell, values in self.cells for seed in self.seeds]

    def validate(self) -> str:
        """Load every run's scenario (one-line ``ConfigError`` naming the key on the first bad
        one); returns the scenario's name."""
        base = load_scenario(self.scenario, list(self.sets))
        for run in self.runs():
            try:
                load_scenario(self.scenario, [*self.sets, *run.overrides()])
            except ConfigError as err:
                hint = f" ({err.hint})" if err.hint else ""
                grid = ", ".join(f"{k}={v}" for k, v in run.values)
                raise ConfigError(
                    f"{err.message}{hint}", path=err.path, hint=f"with --grid {grid}"
                ) from None
        return base.name

    def to_json(self) -> dict:
        return {
            "scenario": str(self.scenario),
            "sets": list(self.sets),
            "grid": [{"key": a.key, "values": list(a.values)} for a in self.axes],
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_json(cls, data: dict, scenario: Path) -> SweepPlan:
        axes = tuple(GridAxis(a["key"], tuple(a["values"])) for a in data["grid"])
        return cls(scenario, tuple(data["sets"]), axes, tuple(int(s) for s in data["seeds"]))


def parse_grid(texts: list[str], scenario: Path | None = None) -> tuple[GridAxis, ...]:
    """``key=v1,v2,...`` options (commas inside brackets, braces or quotes do not split:
    ``eval.ks=[5,10],[20]`` has two values), or linked keys ``k1,k2=[a1,a2],[b1,b2]`` (the
    pairs swept together). Each value must parse as YAML; a key given twice, a reserved key or
    an empty value list is an error naming the key. With ``scenario``, keys are checked against
    it (an unknown key is named before any value is)."""
    axes: list[GridAxis] = []
    for text in texts:
        key, sep, rest = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{text!r} is not KEY=V1,V2,...", path="--grid")
        keys = [k.strip() for k in key.split(",")]
        for one in keys:
            if not one:
                raise ConfigError(f"{text!r} is not KEY=V1,V2,...", path="--grid")
            if one in RESERVED:
                hint = "use --seeds" if one == "seeds" else "run names are set by the sweep"
                raise ConfigError("cannot be swept", path=f"--grid {one}", hint=hint)
            if keys.count(one) > 1 or any(one in a.keys for a in axes):
                raise ConfigError("is given twice", path=f"--grid {one}")
        key = ",".join(keys)
        values = tuple(v.strip() for v in _split_top_level(rest))
        if not values or any(not v for v in values):
            raise ConfigError("expected a value list V1,V2,... without empty values", path=key)
        for value in values:
            try:
                parsed = parse_yaml(value, key)
            except ConfigError as err:
                raise ConfigError(f"value {value!r}: {err.message}", path=key) from None
            linked = len(keys) > 1
            if linked and not (
                value.startswith("[") and isinstance(parsed, list) and len(parsed) == len(keys)
            ):
                raise ConfigError(
                    f"expected lists of {len(keys)} values, one per key, e.g. [v1,v2]; got "
                    f"{value!r}",
                    path=key,
                )
        if len(set(values)) != len(values):
            raise ConfigError("a value repeats", path=key)
        axes.append(GridAxis(key, values))
    if scenario is not None:
        raw = read_raw(scenario)
        for axis in axes:  # an unknown key is reported before any bad value
            for one, value in axis.pairs(axis.values[0]):
                try:
                    build(Scenario, apply_overrides(raw, [f"{one}={value}"]))
                except ConfigError as err:
                    if err.path == one and "unknown key" in err.message:
                        raise
    return tuple(axes)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` (or ``0-4``, a range) as whole numbers, no repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            if dash and low:
                seeds.extend(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"{part!r} is not a whole number", path="--seeds") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError("expected distinct whole numbers >= 0, e.g. 0,1,2", path="--seeds")
    return tuple(seeds)


def _split_top_level(text: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _cell_names(keys: list[str], combos: list[tuple[str, ...]]) -> list[str]:
    """``dim-8_local_lr-0.1``: the last part of each key (the whole key where two axes share
    it) and the value with characters outside letters, digits, ``.``, ``_``, ``-`` replaced;
    ``base`` without a grid. Names that still collide get ``-2``, ``-3`` ... in grid order."""
    if not keys:
        return ["base"]
    last = [key.rsplit(".", 1)[-1] for key in keys]
    short = [k if last.count(k) == 1 else key for k, key in zip(last, keys, strict=True)]
    names, seen = [], set()
    for combo in combos:
        name = "_".join(f"{k}-{_safe(v)}" for k, v in zip(short, combo, strict=True))
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}-{n}"
        seen.add(candidate)
        names.append(candidate)
    return names


def _safe(value: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._-")
    return text or "empty"
