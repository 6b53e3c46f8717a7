"""Round policies by name (``federated.round_policy.kind``): each a module whose
``build(settings)`` makes the policy from the ``RoundPolicyConfig`` section. A new policy is one
module and its line here (and its name in the schema's ``RoundPolicyKind``, until the schema
reads registries)."""

from __future__ import annotations

from collections.abc import Callable

from fedrule.scenario.schema import RoundPolicyConfig
from fedrule.systems.policies import asynchronous, deadline, overcommit, sync
from fedrule.systems.policies.asynchronous import AsyncPolicy, AsyncStep, BufferedAsync
from fedrule.systems.policies.base import KEPT, LATE, OFFLINE, RoundOutcome, RoundPolicy

POLICIES: dict[str, Callable[[RoundPolicyConfig], RoundPolicy | AsyncPolicy]] = {
    "sync": sync.build,
    "deadline": deadline.build,
    "overcommit": overcommit.build,
    "async": asynchronous.build,
}


def make_policy(settings: RoundPolicyConfig) -> RoundPolicy | AsyncPolicy:
    return POLICIES[settings.kind](settings)


__all__ = [
    "KEPT",
    "LATE",
    "OFFLINE",
    "POLICIES",
    "AsyncPolicy",
    "AsyncStep",
    "BufferedAsync",
    "RoundOutcome",
    "RoundPolicy",
    "make_policy",
]
