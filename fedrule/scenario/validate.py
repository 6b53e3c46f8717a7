"""Turn a raw YAML mapping into frozen, typed dataclasses — or a one-line error naming the key.

The schema is the dataclasses themselves (see ``schema.py``): field types drive the checks, field
defaults are the documented defaults, and each field's ``metadata['doc']`` is its meaning.

A key that names a plug-in (``doc(..., registry=SERVER_OPTIMIZERS)``) is checked against its
registry (``fedrule.registry``: a did-you-mean error listing the known names), and the mapping of
its options (``doc(..., options_of="server_optimizer")``) against the plug-in's own options
dataclass, with the same errors as any section (``federated.server_optimizer_options.decay:
expected a number``); the options given are stored (the plug-in's defaults stay its own).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from fedrule.errors import BudgetError, ConfigError, did_you_mean
from fedrule.units import Budget, parse_budget

T = TypeVar("T")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def doc(
    text: str,
    default: Any = dataclasses.MISSING,
    *,
    registry: Any = None,
    options_of: str | None = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field with a documented meaning (shown by ``fedrule validate --explain``).

    ``registry``: the key names entries of this ``fedrule.registry.Registry`` (a name, or a list
    of names). ``options_of``: the key holds the options of the plug-in that the sibling key of
    that name names (for a list of names: a mapping from name to options)."""
    metadata: dict[str, Any] = {"doc": text}
    if registry is not None:
        metadata["registry"] = registry
    if options_of is not None:
        metadata["options_of"] = options_of
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    if isinstance(default, type):  # a nested section: its own defaults
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def build(cls: type[T], raw: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``raw`` (a mapping or None), checking keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping, got {_kind(raw)}", path=path or "<scenario>")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            raise ConfigError(
                "unknown key", path=_join(path, str(key)), hint=did_you_mean(str(key), fields)
            )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        sub = _join(path, name)
        if name in raw:
            values[name] = coerce(hints[name], raw[name], sub)
        elif dataclasses.is_dataclass(hints[name]):
            values[name] = build(hints[name], None, sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError("missing required key", path=sub)
    _check_plugins(fields, raw, values, path)
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if check is not None:
        check(path)
    return obj


def _check_plugins(
    fields: dict[str, dataclasses.Field], raw: Mapping, values: dict[str, Any], path: str
) -> None:
    """Names of plug-ins checked against their registry, their options against the plug-in's
    dataclass. Only what the file gives: defaults name fedrule's own, so an untouched key
    imports nothing."""
    for name, field in fields.items():
        registry = field.metadata.get("registry")
        if registry is not None and name in raw:
            given = values[name]
            for i, entry in enumerate(given if isinstance(given, list) else [given]):
                at = f"{_join(path, name)}[{i}]" if isinstance(given, list) else _join(path, name)
                registry.get(entry, path=at)
        key = field.metadata.get("options_of")
        if key is None or (name not in raw and key not in raw):
            continue
        registry, sub = fields[key].metadata["registry"], _join(path, name)
        chosen = values[key] if key in values else _default_of(fields[key])
        if isinstance(chosen, str):
            values[name] = plugin_options(registry.get(chosen), values.get(name, {}), sub, chosen)
            continue
        given = values.get(name, {})
        stray = [entry for entry in given if entry not in chosen]
        if stray:
            where, hint = f"{sub}.{stray[0]}", did_you_mean(stray[0], chosen)
            raise ConfigError(f"names no entry of {_join(path, key)}", path=where, hint=hint)
        values[name] = {
            entry: plugin_options(registry.get(entry), options, f"{sub}.{entry}", entry)
            for entry, options in given.items()
        }


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def plugin_options(entry: Any, raw: Any, path: str = "", name: str = "it") -> dict[str, Any]:
    """The options ``raw`` (a mapping) of a plug-in ``entry``, validated against its
    ``options`` dataclass (one-line errors at ``path``), as the plain values given (coerced: an
    integer for a float is a float); the dataclass's defaults stay unwritten, so a resolved
    scenario reads back the same. An entry without options takes none."""
    options = getattr(entry, "options", None)
    if options is None:
        if raw:
            raise ConfigError(f"{name} takes no options", path=path, hint="leave it out")
        return {}
    built = build(options, raw, path)
    return {str(key): _plain(getattr(built, str(key))) for key in raw or {}}


def options_from(entry: Any, raw: Mapping[str, Any] | None) -> Any:
    """The options dataclass of a plug-in ``entry`` built from validated plain options
    (``plugin_options``' result); None for an entry without options."""
    options = getattr(entry, "options", None)
    return None if options is None else build(options, raw or {})


def _plain(obj: Any) -> Any:
    if isinstance(obj, Budget):
        return obj.text
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the type ``tp`` and convert it (int -> float, list -> tuple)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(option, value, path)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"got {_kind(value)} {value!r}", path=path, hint="expected " + _name(tp))
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"got {value!r}", path=path, hint=did_you_mean(str(value), map(str, args))
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {_kind(value)}", path=path)
        item_type = args[0] if args else Any
        items = [coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {_kind(value)}", path=path)
        return {str(k): coerce(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is Budget:
        try:
            return parse_budget(value, path=path)
        except BudgetError as err:
            raise ConfigError(err.message, path=path, hint=err.hint) from None
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_kind(value)} {value!r}", path=path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_kind(value)} {value!r}", path=path)
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_kind(value)} {value!r}", path=path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_kind(value)} {value!r}", path=path)
        return value
    if tp is Any:
        return value
    raise TypeError(f"schema type {tp!r} at {path} is not supported")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _name(tp: Any) -> str:
    args = [a for a in get_args(tp) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)


def require(condition: bool, message: str, *, path: str, hint: str | None = None) -> None:
    """Raise a ConfigError at ``path`` unless ``condition`` holds (for cross-field checks)."""
    if not condition:
        raise ConfigError(message, path=path, hint=hint)
