"""Uniform on ``[low, high]`` (``{uniform: {low: 5, high: 50}}``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.distributions.base import Distribution, require


@dataclass(frozen=True)
class Uniform(Distribution):
    name = "uniform"
    required = ("low", "high")

    low: float
    high: float

    @classmethod
    def from_params(cls, params: object, path: str) -> Uniform:
        made = super().from_params(params, path)
        require(made.low <= made.high, f"must be >= low ({made.low:g})", f"{path}.high")
        return made

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return self.low + (self.high - self.low) * np.asarray(u, dtype=np.float64)

    @property
    def lower_bound(self) -> float:
        return self.low
