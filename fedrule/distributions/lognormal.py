"""Log-normal: ``median * exp(sigma * z)`` with z standard normal (``{lognormal: {median: 500,
sigma: 0.5}}``).

The default spread ``sigma: 0.6`` is FedScale's: ``ClientMetadata.get_completion_time_lognormal``
(SymbioticLab/FedScale, ``fedscale/cloud/internal/client_metadata.py``) draws a device's speed
factor as ``lognormal(1, tail_skew)`` with ``tail_skew=0.6``, after the PAPAYA and GFL papers it
cites. Device speeds and bandwidths are positive and right-skewed, which a log-normal keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import ndtri

from fedrule.distributions.base import Distribution, require

FEDSCALE_SIGMA = 0.6
MAX_SIGMA = 10.0  # e^10 = 22,000-fold per sigma; beyond it values underflow to 0 or overflow


@dataclass(frozen=True)
class Lognormal(Distribution):
    name = "lognormal"
    required = ("median",)
    optional: ClassVar[dict[str, float]] = {"sigma": FEDSCALE_SIGMA}

    median: float
    sigma: float = FEDSCALE_SIGMA

    @classmethod
    def from_params(cls, params: object, path: str) -> Lognormal:
        made = super().from_params(params, path)
        require(made.median > 0, "must be > 0", f"{path}.median")
        require(0 <= made.sigma <= MAX_SIGMA, f"must lie in [0, {MAX_SIGMA:g}]", f"{path}.sigma")
        return made

    def quantile(self, u: np.ndarray) -> np.ndarray:
        return self.median * np.exp(self.sigma * ndtri(np.asarray(u, dtype=np.float64)))

    @property
    def lower_bound(self) -> float:
        return 0.0 if self.sigma > 0 else self.median

    @property
    def positive(self) -> bool:
        return True  # the infimum 0 is never reached
