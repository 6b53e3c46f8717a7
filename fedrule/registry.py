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
known names. The registries of fedrule are at the end of this module, one per kind of plug-in.

A plug-in's options: an entry may have an ``options`` attribute, a frozen dataclass whose fields
are documented as the schema's are (``fedrule.scenario.validate.doc``). A scenario gives them in
the mapping next to the key that names the entry (``federated.server_optimizer_options`` beside
``federated.server_optimizer``; for a list of names, ``privacy.attack_options`` keyed by name),
and the schema validates them against that dataclass with its one-line errors. Every process
resolves a name itself: a Ray worker or a Flower SuperNode that decodes, trains or steps with a
plug-in finds it through its entry point, never through a registration made in another process.
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
        self._from_plugins: set[str] = set()  # names loaded from entry points
        self._loaded = False

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` (a name already taken by another entry: ValueError)."""
        known = self._entries.get(name)
        if known is not None and known is not entry:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a runtime registration, e.g. a test's, or a loaded plug-in: a later
        lookup loads it again)."""
        self._entries.pop(name, None)
        self._from_plugins.discard(name)

    def get(self, name: str, *, path: str | None = None) -> T:
        """The entry ``name``; unknown: a one-line ``ConfigError`` at ``path`` (default: the
        registry's scenario key) listing the known names."""
        self._load_builtins()
        if name not in self._entries:
            plugin = self._plugins().get(name)
            if plugin is not None:
                self.register(name, self._load(plugin))
                self._from_plugins.add(name)
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

    def own_names(self) -> tuple[str, ...]:
        """The names not loaded from entry points: fedrule's own (and runtime registrations),
        what ``fedrule validate --explain`` lists beside "or a registered plug-in"."""
        self._load_builtins()
        return tuple(n for n in self._entries if n not in self._from_plugins)

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


# fedrule's registries, one per kind of plug-in. Each kind's interface lives above this layer,
# in the module named beside it, which documents what an entry is.
METHODS: Registry[Any] = Registry(
    "federated method",
    path="federated.method",
    group="fedrule.methods",
    builtins=("fedrule.algorithm.methods",),
)
"""``FederatedMethod`` instances (``fedrule.algorithm.methods``; ``get_method`` returns them
typed)."""

CODECS: Registry[Any] = Registry(
    "item codec",
    path="federated.method",  # a method's codec_kind names one
    group="fedrule.codecs",
    builtins=("fedrule.model.codec",),  # the elastic format; it imports the baselines'
)
"""The device side of an item table format, ``Decoder`` (``fedrule.model.codecs.decoder``):
how a device rebuilds what it received (and, for a format of shared parameter rows, what it
trains). A method's ``codec_kind`` names one."""

SERVER_OPTIMIZERS: Registry[Any] = Registry(
    "server optimizer",
    path="federated.server_optimizer",
    group="fedrule.server_optimizers",
    builtins=("fedrule.algorithm.server_step",),
)
"""``ServerOptimizer``s (``fedrule.algorithm.server_step``): build a ``ServerStep`` from the
scenario's ``federated`` section and the optimiser's options."""

LOCAL_OPTIMIZERS: Registry[Any] = Registry(
    "local optimizer",
    path="federated.local_optimizer",
    group="fedrule.local_optimizers",
    builtins=("fedrule.device.local_optimizer",),
)
"""``LocalOptimizer`` subclasses (``fedrule.device.local_optimizer``): a device's optimizer over
its private rows and user vector, built on the worker that trains the cohort."""

UPDATE_STEPS: Registry[Any] = Registry(
    "update step",
    path="privacy.update_steps",
    group="fedrule.update_steps",
    builtins=("fedrule.device.update",),
)
"""``UpdateStepKind``s (``fedrule.device.update``): device-side steps on each device's own
update before any sum (privacy mechanisms, compression)."""

ATTACKS: Registry[Any] = Registry(
    "leakage attack",
    path="privacy.attacks",
    group="fedrule.attacks",
    builtins=("fedrule.privacy.attacks",),
)
"""``Attack``s (``fedrule.privacy.attacks``) the leakage audit mounts on what the server
received."""

PROFILE_SOURCES: Registry[Any] = Registry(
    "device-profile source",
    path="fleet.profiles.source",
    group="fedrule.profile_sources",
    builtins=(),  # fedrule/systems registers its own sources
)
"""Where a fleet's device profiles come from (``fedrule.systems``)."""
