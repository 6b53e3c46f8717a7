"""fedrule: simulate fleets of on-device recommenders with elastic (RULE) item embeddings.

The public API (``fedrule.api``): ``load_scenario``, ``run``, ``load_run``, ``sweep`` and the
results they return, ``RunResult`` and ``SweepResult``. They are imported on first use, so that
``import fedrule`` stays cheap (the command line, a worker, ``fedrule --version``).

``fedrule.sweep`` is also the package of sweeps (``fedrule/sweep/``): that package is callable,
and calling it is ``fedrule.api.sweep``, so ``fedrule.sweep(...)`` runs a sweep while
``fedrule.sweep.runner`` and ``from fedrule.sweep import ...`` stay the package's.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedrule.api import RunResult, SweepResult, load_run, load_scenario, run, sweep

__all__ = ["RunResult", "SweepResult", "__version__", "load_run", "load_scenario", "run", "sweep"]
_API = frozenset(__all__) - {"__version__", "sweep"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from fedrule import api

        return getattr(api, name)
    if name == "sweep":  # the package, made callable as it is imported (_Namespace)
        from importlib import import_module

        return import_module("fedrule.sweep")
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("fedrule")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'fedrule' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


class _SweepPackage(types.ModuleType):
    """``fedrule/sweep/``, callable: ``fedrule.sweep(...)`` is ``fedrule.api.sweep(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepResult:
        from fedrule.api import sweep

        return sweep(*args, **kwargs)


class _Namespace(types.ModuleType):
    """This module: the sweep package becomes callable when the import system binds it here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "sweep" and isinstance(value, types.ModuleType):
            value.__class__ = _SweepPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Namespace
