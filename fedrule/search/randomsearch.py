"""Random search (the ablation): many random feasible configurations, best by the estimator.

Configurations are drawn near the budget (a kept value share between ``low`` and 1 times the
budget's, with random shapes and block subsets, as in ``sample_configs``), repaired to fit by
dropping random blocks, and scored in one batched call.
"""

from __future__ import annotations

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.search.base import CountingPredict, repair
from fedrule.search.sampling import _shapes, counts_for_targets


def random_search(
    layout: ElasticLayout,
    budget_bytes: int,
    predict: CountingPredict,
    rng: np.random.Generator,
    *,
    samples: int = 300,
    low: float = 0.8,
) -> np.ndarray:
    if samples < 1:
        raise ValueError("random search needs samples >= 1")
    g, b = layout.shape
    values = int(layout.bytes_per_block.sum()) * b
    share = (budget_bytes - layout.metadata_bytes) / values if values else 1.0
    targets = np.clip(share * rng.uniform(low, 1.0, samples), layout.min_blocks / b, 1.0)
    counts = counts_for_targets(layout, targets, _shapes(rng, samples, g))
    ranks = np.argsort(rng.random((samples, g, b)), axis=2).argsort(axis=2)
    configs = ranks < counts[:, :, None]
    configs = np.stack([repair(layout, c, budget_bytes, rng.random((g, b))) for c in configs])
    return configs[int(np.argmax(predict(configs)))]
