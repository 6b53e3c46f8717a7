"""Read a scenario file, apply ``--set a.b=c`` overrides, validate, and write the resolved form."""

from __future__ import annotations

import copy
import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from fedrule.errors import ConfigError
from fedrule.scenario.schema import Scenario
from fedrule.scenario.strict_yaml import parse_yaml
from fedrule.scenario.validate import build
from fedrule.units import Budget


def read_raw(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; one-line errors for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such scenario file", path=str(path), hint="expected a .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read file: {err}", path=str(path)) from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", path=str(path))
    return raw


STRUCTURED = ("[", "{", '"', "'")
"""How a ``--set`` or ``--grid`` value that must parse as YAML starts (a list, a mapping, a
quoted string); other text that YAML cannot read is kept as a plain string (``@host``)."""


def parse_value(text: str, where: str) -> Any:
    """A ``--set`` or ``--grid`` value: YAML (``16``, ``[5, 10]``, ``{name: a}``), or the text
    itself when YAML cannot read it and it does not start like a list, mapping or quoted
    string; an unreadable one that does is a ``ConfigError`` naming its column."""
    if not text.strip():
        return ""
    try:
        return parse_yaml(text, where)
    except ConfigError as err:
        if text.strip().startswith(STRUCTURED) or not err.message.startswith("cannot parse"):
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise ConfigError(f"{err.message} in {shown!r}", path=where) from None
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``a.b.c=value`` applied (value parsed as YAML)."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        key, sep, value_text = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {text!r} is not KEY=VALUE", path="--set")
        value = parse_value(value_text, f"--set {key}")
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError("is not a section", path=".".join(parts[: i + 1]))
            node = child
        node[parts[-1]] = value
    return raw


FLEET_SECTIONS = ("fleet", "federated")
"""Sections that describe a federated run: with one of them and no ``engine.kind``, the run is
federated (``engine.kind``'s documented default)."""


def with_engine_kind(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``engine.kind`` filled in when the file leaves it out: ``federated`` if it
    has a ``fleet:`` or ``federated:`` section (the file describes a fleet), else unchanged
    (the schema's default, ``centralized``)."""
    engine = raw.get("engine") or {}
    if not isinstance(engine, dict) or "kind" in engine:
        return raw  # given, or not a mapping (the schema reports that)
    if not any(section in raw for section in FLEET_SECTIONS):
        return raw
    return {**raw, "engine": {**engine, "kind": "federated"}}


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file (``engine.kind`` left out follows the
    file's sections, not the overrides: ``--set federated.rounds=1`` on a centralised file,
    as a sweep or test may set on every file, keeps it centralised)."""
    raw = apply_overrides(with_engine_kind(read_raw(path)), overrides or [])
    return build(Scenario, raw)


def scenario_from_dict(raw: dict[str, Any], overrides: list[str] | None = None) -> Scenario:
    """Validate a scenario given as a mapping (tests, notebooks), as ``load_scenario``."""
    return build(Scenario, apply_overrides(with_engine_kind(raw), overrides or []))


def to_plain(obj: Any) -> Any:
    """A YAML/JSON-ready form of a scenario (dataclasses -> dicts, budgets -> their text)."""
    if isinstance(obj, Budget):
        return obj.text
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Fraction):
        return float(obj)
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def dump_scenario(scenario: Scenario) -> str:
    """The resolved scenario as YAML (every key, defaults filled in)."""
    return yaml.safe_dump(to_plain(scenario), sort_keys=False)
