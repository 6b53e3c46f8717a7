"""Uniform search: every group keeps its first ``k`` blocks, the largest ``k`` that fits."""

from __future__ import annotations

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.search.base import CountingPredict, uniform_blocks


def uniform(
    layout: ElasticLayout,
    budget_bytes: int,
    predict: CountingPredict,
    rng: np.random.Generator,
) -> np.ndarray:
    """The uniform configuration with the most blocks per group that fits the budget."""
    del predict, rng  # the same for every estimator: the reference point
    return layout.uniform_config(uniform_blocks(layout, budget_bytes))
