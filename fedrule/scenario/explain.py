"""Every key of the scenario schema with its type, default and meaning (``fedrule validate
--explain``), read from the dataclasses of ``schema.py`` so that it cannot drift from them."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import yaml

from fedrule.scenario.load import to_plain
from fedrule.scenario.schema import Scenario
from fedrule.units import Budget

_LEADING_TYPE = re.compile(r"^\([^)]*\)\s*")


@dataclass(frozen=True)
class KeyDoc:
    """One key: dotted path (``[]`` marks the items of a list), type, default, meaning."""

    path: str
    type: str
    default: str
    meaning: str


def explain(cls: type = Scenario, prefix: str = "") -> list[KeyDoc]:
    """The keys of ``cls`` and of its nested sections, in schema order."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        text = f.metadata.get("doc", "")
        meaning = _LEADING_TYPE.sub("", text)
        kind = type_name(tp)
        leading = _LEADING_TYPE.match(text)
        if tp is Any and leading:  # a value its section checks: the doc names its type
            kind = leading.group(0).strip()[1:-1]
        rows.append(KeyDoc(path, kind, _default(f), meaning))
        section = _section(tp)
        if section is not None:
            inner = f"{path}[]." if get_origin(tp) is list else f"{path}."
            rows += explain(section, inner)
    return rows


def explain_text(cls: type = Scenario, max_width: int = 24) -> str:
    """``explain`` as aligned plain-text lines with a header (columns wider than ``max_width``
    characters do not widen the others)."""
    rows = [KeyDoc("key", "type", "default", "meaning"), *explain(cls)]
    names = ("path", "type", "default")
    widths = {
        name: max(len(v) for r in rows if len(v := getattr(r, name)) <= max_width or name == "path")
        for name in names
    }
    return "\n".join(
        "  ".join(f"{getattr(r, name):<{widths[name]}}" for name in names) + f"  {r.meaning}"
        for r in rows
    )


def type_name(tp: Any) -> str:
    """A short name for a schema type: ``int``, ``loo|ratio``, ``list[int]``, ``str|null``."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return "|".join("null" if a is type(None) else type_name(a) for a in args)
    if origin is list:
        return f"list[{type_name(args[0])}]" if args else "list"
    if tp is Budget:
        return "budget"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def _section(tp: Any) -> type | None:
    """The section (dataclass) a field holds, directly or as the items of a list."""
    args = get_args(tp)
    inner = args[0] if get_origin(tp) is list and args else tp
    if dataclasses.is_dataclass(inner) and inner is not Budget:
        return inner
    return None


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return ""  # a section: its keys follow
    text = yaml.safe_dump(
        to_plain(value), default_flow_style=True, sort_keys=False, width=10_000
    ).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
