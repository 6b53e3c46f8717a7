"""Uniform search: every group keeps its first ``k`` blocks; the best predicted ``k`` that fits.

With an estimator that values every block (the usual case) that is the largest ``k`` that fits;
a smaller ``k`` is chosen only when the estimator rates it strictly higher, so the prediction
never falls when the budget grows. Equal predictions keep the largest ``k``.
"""

from __future__ import annotations

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.search.base import CountingPredict, best_start


def uniform(
    layout: ElasticLayout,
    budget_bytes: int,
    predict: CountingPredict,
    rng: np.random.Generator,
    *,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """The uniform configuration the estimator rates best among those that fit the budget."""
    del rng, starts  # the starts are not uniform: ``search`` compares them with the result
    return best_start(layout, budget_bytes, predict)[0]
