"""The server's step on the aggregate: from summed device updates to the next item table.

``ServerStep`` is the server half of the update pipeline (the device half, per device and before
any sum, is ``fedrule.device.update``): server optimisers and server-side noise go here. Each
keeps its state in ``state_dict`` so that a round hook can checkpoint it.

The optimisers follow "Adaptive Federated Optimization" (Reddi et al., ICLR 2021), with the
average device update as the pseudo-gradient, applied entry-wise on the row/block-sparse
aggregate: an entry that no device updated this round keeps its value and its state.

``federated.server_optimizer`` names a ``ServerOptimizer`` registered in
``fedrule.registry.SERVER_OPTIMIZERS``: fedrule's own (``fedavg``, ``fedavgm``, ``fedadam``,
``fedyogi``, set by the ``federated.server_*`` keys) are registered here; a package adds one
through an entry point of the group ``fedrule.server_optimizers``, with its options in
``federated.server_optimizer_options``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from fedrule.algorithm.aggregation import RowBlockAggregator, finite
from fedrule.registry import SERVER_OPTIMIZERS
from fedrule.scenario.schema import FederatedConfig
from fedrule.scenario.validate import options_from


class ServerStep(Protocol):
    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        """The next table (a new array); raises ``DivergedError`` if it is not finite."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...


@dataclass
class FedAvg:
    """Row- and block-wise FedAvg with a server learning rate (stateless)."""

    lr: float = 1.0

    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        return aggregate.apply(table, self.lr)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


@dataclass
class FedAvgM:
    """FedAvg with server momentum: ``m = beta * m + delta``; ``x += lr * m`` (touched entries)."""

    lr: float = 1.0
    momentum: float = 0.9
    m: np.ndarray | None = field(default=None, repr=False)

    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        delta, touched = aggregate.mean_update()
        if self.m is None:
            self.m = np.zeros_like(delta)
        self.m[touched] = self.momentum * self.m[touched] + delta[touched]
        new = table.astype(np.float64)
        new[touched] += self.lr * self.m[touched]
        return finite(new.astype(table.dtype))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self.m is None else {"m": self.m}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.m = np.array(state["m"]) if "m" in state else None


@dataclass
class FedAdaptive:
    """FedAdam / FedYogi: ``m = b1 m + (1-b1) delta``; second moment ``v`` by Adam's or Yogi's
    rule; ``x += lr * m / (sqrt(v) + tau)`` on touched entries (no bias correction, as in the
    paper)."""

    rule: str = "adam"  # adam | yogi
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    m: np.ndarray | None = field(default=None, repr=False)
    v: np.ndarray | None = field(default=None, repr=False)

    def apply(self, table: np.ndarray, aggregate: RowBlockAggregator) -> np.ndarray:
        delta, touched = aggregate.mean_update()
        if self.m is None or self.v is None:
            self.m = np.zeros_like(delta)
            self.v = np.full_like(delta, self.tau**2)  # the paper's v_{-1} = tau^2
        d = delta[touched]
        self.m[touched] = self.beta1 * self.m[touched] + (1 - self.beta1) * d
        v = self.v[touched]
        if self.rule == "yogi":
            self.v[touched] = v - (1 - self.beta2) * d * d * np.sign(v - d * d)
        else:
            self.v[touched] = self.beta2 * v + (1 - self.beta2) * d * d
        new = table.astype(np.float64)
        new[touched] += self.lr * self.m[touched] / (np.sqrt(self.v[touched]) + self.tau)
        return finite(new.astype(table.dtype))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self.m is None else {"m": self.m, "v": self.v}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "m" in state:
            self.m, self.v = np.array(state["m"]), np.array(state["v"])


@dataclass(frozen=True)
class ServerOptimizer:
    """A registered server optimiser: ``build(federated, options)`` makes its ``ServerStep``
    from the scenario's ``federated`` section (``server_lr`` and the like) and its options, an
    instance of ``options`` (a frozen dataclass; None: it takes none)."""

    build: Callable[[FederatedConfig, Any], ServerStep]
    options: type | None = None


def make_server_step(federated: FederatedConfig) -> ServerStep:
    """The server step ``federated.server_optimizer`` names, with its options."""
    entry = cast(ServerOptimizer, SERVER_OPTIMIZERS.get(federated.server_optimizer))
    return entry.build(federated, options_from(entry, federated.server_optimizer_options))


def _fedavg(fed: FederatedConfig, options: None) -> ServerStep:
    return FedAvg(fed.server_lr)


def _fedavgm(fed: FederatedConfig, options: None) -> ServerStep:
    return FedAvgM(fed.server_lr, fed.server_momentum)


def _adaptive(rule: str) -> Callable[[FederatedConfig, None], ServerStep]:
    def build(fed: FederatedConfig, options: None) -> ServerStep:
        return FedAdaptive(
            rule, fed.server_lr, fed.server_momentum, fed.server_beta2, fed.server_tau
        )

    return build


for _name, _build in (
    ("fedavg", _fedavg),
    ("fedavgm", _fedavgm),
    ("fedadam", _adaptive("adam")),
    ("fedyogi", _adaptive("yogi")),
):
    SERVER_OPTIMIZERS.register(_name, ServerOptimizer(_build))
