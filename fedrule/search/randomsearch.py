"""Random search (the ablation): many random feasible configurations, best by the estimator.

Most configurations are drawn near the budget (a kept value share between ``low`` and 1 times
the budget's), a share ``spread`` of them anywhere between the smallest configuration and the
budget (every configuration that fits may be drawn), all with random shapes and block subsets as
in ``sample_configs``; they are repaired to fit by dropping random blocks and scored, with the
warm starts (configurations found for smaller budgets), in one batched call.
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
    spread: float = 0.25,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    if samples < 1:
        raise ValueError("random search needs samples >= 1")
    g, b = layout.shape
    values = int(layout.bytes_per_block.sum()) * b
    share = (budget_bytes - layout.metadata_bytes) / values if values else 1.0
    lowest = np.where(rng.random(samples) < spread, 0.0, low)
    targets = np.clip(share * rng.uniform(lowest, 1.0), layout.min_blocks / b, 1.0)
    counts = counts_for_targets(layout, targets, _shapes(rng, samples, g))
    ranks = np.argsort(rng.random((samples, g, b)), axis=2).argsort(axis=2)
    configs = ranks < counts[:, :, None]
    configs = np.stack([repair(layout, c, budget_bytes, rng.random((g, b))) for c in configs])
    if starts is not None and len(starts):
        configs = np.concatenate([configs, np.asarray(starts, dtype=bool)])
    return configs[int(np.argmax(predict(configs)))]
