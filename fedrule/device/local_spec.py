"""What a device's local training does: epochs, minibatches, negatives, optimizer, objective."""

from __future__ import annotations

from dataclasses import dataclass

from fedrule.names import SAMPLINGS
from fedrule.registry import LOCAL_OPTIMIZERS


@dataclass(frozen=True)
class LocalSpec:
    epochs: int
    batch_size: int
    lr: float
    negatives: int
    l2: float
    lambda_div: float
    sampling: str
    optimizer: str = "adam"  # a name in fedrule.registry.LOCAL_OPTIMIZERS
    optimizer_options: str = "{}"  # its options as JSON (plain and hashable, for any worker)
    compiled: bool = False  # torch.compile the objective's kernels
    negative_exponent: float = 0.0  # negatives in proportion to estimated popularity ** this

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, not {self.sampling!r}")
        LOCAL_OPTIMIZERS.get(self.optimizer)  # unknown: a one-line ConfigError
        if self.epochs < 0 or self.batch_size < 1 or self.negatives < 1:
            raise ValueError("epochs must be >= 0, batch_size and negatives >= 1")
