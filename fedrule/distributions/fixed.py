"""A fixed value: every device of the tier gets the same number (``download_mbps: 20``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.distributions.base import Distribution


@dataclass(frozen=True)
class Fixed(Distribution):
    name = "fixed"
    required = ("value",)

    value: float

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return np.full(np.shape(u), self.value, dtype=np.float64)

    @property
    def lower_bound(self) -> float:
        return self.value
