"""fedrule: simulate fleets of on-device recommenders with elastic (RULE) item embeddings.

The public API (``fedrule.api``): ``load_scenario``, ``run``, ``load_run``, ``sweep`` and the
results they return, ``RunResult`` and ``SweepResult``. They are imported on first use, so that
``import fedrule`` stays cheap (the command line, a worker, ``fedrule --version``). The package
that plans and runs sweeps is ``fedrule.sweeps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedrule.api import RunResult, SweepResult, load_run, load_scenario, run, sweep

__all__ = ["RunResult", "SweepResult", "__version__", "load_run", "load_scenario", "run", "sweep"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from fedrule import api

        return getattr(api, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("fedrule")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'fedrule' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
