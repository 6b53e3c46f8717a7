"""Normal, truncated below at ``min`` (``{normal: {mean: 40, std: 10, min: 1}}``).

The truncation is exact, not a clip: a device's uniform ``u`` is mapped into the part of the
normal above ``min`` (``Phi(a) + u (1 - Phi(a))``, a = (min - mean) / std), so no device sits on
the bound and nothing is redrawn. Without ``min`` the normal is untruncated (then it can be
negative, which speeds and bandwidths refuse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import ndtr, ndtri

from fedrule.distributions.base import Distribution, require


@dataclass(frozen=True)
class Normal(Distribution):
    name = "normal"
    required = ("mean", "std")
    optional: ClassVar[dict[str, float]] = {"min": -math.inf}

    mean: float
    std: float
    min: float = -math.inf

    @classmethod
    def from_params(cls, params: object, path: str) -> Normal:
        made = super().from_params(params, path)
        require(made.std >= 0, "must be >= 0", f"{path}.std")
        require(
            made.std > 0 or made.mean >= made.min,
            f"a normal of std 0 sits at its mean ({made.mean:g}): must be >= min",
            f"{path}.mean",
        )
        require(
            made.std == 0 or ndtr((made.min - made.mean) / made.std) < 1 - 1e-12,
            "leaves no probability above min",
            f"{path}.min",
        )
        return made

    def quantile(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if self.std == 0:
            return np.full(u.shape, self.mean)
        below = ndtr((self.min - self.mean) / self.std) if math.isfinite(self.min) else 0.0
        values = self.mean + self.std * ndtri(below + u * (1.0 - below))
        return np.maximum(values, self.min)  # rounding at the bound only

    @property
    def lower_bound(self) -> float:
        return self.mean if self.std == 0 else self.min
