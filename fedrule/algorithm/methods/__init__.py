"""The federated methods (``federated.method``), one module each, behind one registry.

``rule`` (RULE), the prefix baselines (``nested``, ``per-tier``, ``full-prefix``), the
compressed ones (``hashing``, ``qr``) and ``popularity``. Each is a ``FederatedMethod``
(``base.py``) registered in ``fedrule.registry.METHODS`` under its name; ``get_method`` looks one
up (an unknown name: a one-line error at ``federated.method`` listing the known ones). A
package adds a method through an entry point of the group ``fedrule.methods``; a test or
notebook with ``register_method``.
"""

from __future__ import annotations

from typing import cast

from fedrule.algorithm.methods.base import FederatedMethod
from fedrule.algorithm.methods.compressed import HASHING, QUOTIENT_REMAINDER
from fedrule.algorithm.methods.popularity import POPULARITY
from fedrule.algorithm.methods.prefix import FULL_PREFIX, NESTED, PER_TIER
from fedrule.algorithm.methods.rule import RULE
from fedrule.registry import METHODS

for _method in (RULE, NESTED, PER_TIER, FULL_PREFIX, HASHING, QUOTIENT_REMAINDER, POPULARITY):
    METHODS.register(_method.name, _method)


def get_method(name: str, *, path: str | None = None) -> FederatedMethod:
    """The method registered as ``name`` (unknown: ``ConfigError`` at ``path``, by default
    ``federated.method``)."""
    return cast(FederatedMethod, METHODS.get(name, path=path))


def register_method(method: FederatedMethod) -> FederatedMethod:
    """Register ``method`` under its name (at run time: tests, notebooks)."""
    return cast(FederatedMethod, METHODS.register(method.name, method))


__all__ = ["METHODS", "FederatedMethod", "get_method", "register_method"]
