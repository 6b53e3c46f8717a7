"""Named plug-ins of one kind, looked up by the name a scenario gives them.

A ``Registry`` holds fedrule's own entries and those of installed packages:

- fedrule's own are registered by the modules named in ``builtins``, imported on the first
  lookup. A low layer can so check a name (the scenario schema checks ``federated.method``)
  without importing the layer that implements it;
- a package adds one without editing fedrule through an entry point of the registry's
  ``group`` (``[project.entry-points."fedrule.methods"]``: ``name = "package.module:object"``),
  loaded when its name is first asked for;
- a test or notebook calls ``register`` (and ``unregister``) at run time.

An unknown name is a one-line ``ConfigError`` at the registry's scenario key that lists the
known names. The registries of fedrule are at the end of this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from fedrule.errors import ConfigError, FedruleError, nearest

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name: ``register``, ``get``, ``names``."""

    def __init__(self, what: str, *, path: str, group: str, builtins: Sequence[str] = ()) -> None:
        self.what = what  # how errors name an entry: "federated method"
        self.path = path  # the scenario key that names one: "federated.method"
        self.group = group  # the entry-point group of plug-ins: "fedrule.methods"
        self.builtins = tuple(builtins)  # modules whose import registers fedrule's own
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` (a name already taken by another entry: ValueError)."""
        known = self._entries.get(name)
        if known is not None and known is not entry:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a runtime registration, e.g. a test's)."""
        self._entries.pop(name, None)

    def get(self, name: str, *, path: str | None = None) -> T:
        """The entry ``name``; unknown: a one-line ``ConfigError`` at ``path`` (default: the
        registry's scenario key) listing the known names."""
        self._load_builtins()
        if name not in self._entries:
            plugin = self._plugins().get(name)
            if plugin is not None:
                self.register(name, self._load(plugin))
        if name not in self._entries:
            names = self.names()
            best = nearest(name, names)
            hint = (f"did you mean {best!r}? " if best else "") + "known: " + ", ".join(names)
            raise ConfigError(f"unknown {self.what} {name!r}", path=path or self.path, hint=hint)
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every known name: fedrule's own and runtime ones in registration order, then the
        installed plug-ins' (not loaded)."""
        self._load_builtins()
        return (*self._entries, *(n for n in sorted(self._plugins()) if n not in self._entries))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[T]:
        """Every entry, plug-ins loaded."""
        return iter([self.get(name) for name in self.names()])

    def _load_builtins(self) -> None:
        if not self._loaded:
            for module in self.builtins:  # a module being imported: its partial self, no loop
                importlib.import_module(module)
            self._loaded = True

    def _plugins(self) -> dict[str, EntryPoint]:
        return {point.name: point for point in entry_points(group=self.group)}

    def _load(self, point: EntryPoint) -> T:
        try:
            return point.load()
        except Exception as err:
            raise FedruleError(
                f"the plug-in {point.value!r} of entry-point group {self.group} does not load "
                f"({type(err).__name__}: {err})",
                path=self.path,
            ) from None


# fedrule's registries. The methods' type, ``fedrule.algorithm.methods.FederatedMethod``, lives
# above this layer: ``fedrule.algorithm.methods.get_method`` returns it typed.
METHODS: Registry[Any] = Registry(
    "federated method",
    path="federated.method",
    group="fedrule.methods",
    builtins=("fedrule.algorithm.methods",),
)
