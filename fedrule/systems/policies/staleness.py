"""Staleness weights of the asynchronous policy: an update computed on a table ``s`` server
steps old counts ``weight(s)`` times (``federated.round_policy.staleness``).

``inverse-sqrt`` is FedBuff's polynomial staleness scaling 1 / sqrt(1 + s) (Nguyen et al. 2022,
as FedScale's ``AsyncAggregator.update_weight_aggregation`` implements it); ``constant`` counts
every update the same. A new function is one line here (and its name in the schema's
``Staleness``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STALENESS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "inverse-sqrt": lambda s: 1.0 / np.sqrt(1.0 + np.asarray(s, dtype=np.float64)),
    "constant": lambda s: np.ones(np.shape(s)),
}
