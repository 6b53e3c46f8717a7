"""Retrain-free customisation: from labelled configurations to one configuration per budget.

The glue that the centralised RULE run and the federated server share: fit the estimator on
labels, search each budget with the scenario's searcher (all budgets of a run in increasing
order, each warm-started with the smaller budgets' results: ``search_all``), and the
configurations a budgeted device may train before any estimator exists (``start_config``: the
largest uniform one, ``uniform_fit``, or popular groups first, ``popularity_fit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fedrule import killpoints, seeds
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import EstimatorConfig, SearchConfig
from fedrule.search.base import uniform_blocks
from fedrule.search.estimator import PerformanceEstimator, fit_estimator
from fedrule.search.features import group_popularity_share
from fedrule.search.sampling import sample_configs
from fedrule.search.searchers import SearchResult
from fedrule.search.searchers import search as search_budget

__all__ = [
    "fit",
    "popularity_fit",
    "sample_configs",
    "search",
    "search_all",
    "start_config",
    "uniform_fit",
]


def fit(
    layout: ElasticLayout,
    configs: np.ndarray,
    labels: np.ndarray,
    popularity: np.ndarray,
    est: EstimatorConfig,
    seed: int,
) -> tuple[PerformanceEstimator, dict]:
    """Fit the estimator (held-out Spearman in the report), then refit it on every label."""
    estimator, report = fit_estimator(
        layout,
        configs,
        labels,
        group_popularity_share(layout, popularity),
        holdout_fraction=est.holdout,
        seed=seed,
        hidden=tuple(est.hidden),
        epochs=est.epochs,
        lr=est.lr,
        refit=True,
    )
    killpoints.reached("estimator fit")
    return estimator, dict(report)


def search(
    layout: ElasticLayout,
    budget_bytes: int,
    estimator: PerformanceEstimator,
    cfg: SearchConfig,
    seed: int,
    searcher: str | None = None,
    starts: Sequence[SearchResult] = (),
) -> SearchResult:
    """The best configuration the searcher finds under ``budget_bytes`` (seeded per budget),
    warm-started with ``starts`` (results at smaller budgets)."""
    name = searcher or cfg.searcher
    rng = np.random.default_rng(np.random.SeedSequence([seed, budget_bytes, seeds.SEARCH]))
    options = {
        "evolution": {
            "population": cfg.population,
            "sample": cfg.tournament,
            "cycles": cfg.cycles,
        },
        "random": {"samples": cfg.samples},
    }.get(name, {})
    return search_budget(
        name, layout, budget_bytes, estimator.predict, rng, starts=starts, **options
    )


def search_all(
    layout: ElasticLayout,
    budgets: Iterable[int],
    estimator: PerformanceEstimator,
    cfg: SearchConfig,
    seed: int,
    searcher: str | None = None,
) -> dict[int, SearchResult]:
    """``search`` of every distinct budget, in increasing order, each warm-started with the
    results of all smaller ones: the predicted score never falls as the budget grows."""
    found: dict[int, SearchResult] = {}
    for budget in sorted({int(b) for b in budgets}):
        found[budget] = search(
            layout, budget, estimator, cfg, seed, searcher, starts=list(found.values())
        )
    killpoints.reached("search")
    return found


def uniform_fit(layout: ElasticLayout, budget_bytes: int) -> np.ndarray:
    """The largest uniform configuration (first k blocks of every group) within the budget."""
    layout.check_budget(budget_bytes)
    return layout.uniform_config(uniform_blocks(layout, budget_bytes))


def popularity_fit(layout: ElasticLayout, budget_bytes: int, popularity: np.ndarray) -> np.ndarray:
    """Blocks per group in proportion to the mean popularity of its items, the largest such
    allocation within the budget (mixed-dimension embeddings, Ginart et al. 2021): group ``g``
    keeps its first ``clip(floor(c * p_g / max p), min_blocks, B)`` blocks for the largest
    ``c`` that fits, then the leftover bytes give one more block to each group that still fits,
    the most popular first. Without counts every group is as popular: the uniform fit, with
    the leftover bytes to the first groups."""
    layout.check_budget(budget_bytes)
    sizes = layout.group_sizes
    share = group_popularity_share(layout, popularity)
    mean = np.divide(share, sizes, out=np.zeros_like(share), where=sizes > 0)
    ratio = mean / mean.max() if mean.max() > 0 else np.ones_like(mean)
    lo_blocks, top = layout.min_blocks, layout.num_blocks

    def blocks(scale: float) -> np.ndarray:
        return np.clip(np.floor(scale * ratio), lo_blocks, top).astype(np.int64)

    def cost(counts: np.ndarray) -> int:
        return layout.metadata_bytes + int(counts @ layout.bytes_per_block)

    low, high = 0.0, top / ratio[ratio > 0].min() + 1.0  # at high every group is full
    for _ in range(64):  # the largest scale that fits (cost grows with the scale)
        middle = (low + high) / 2
        low, high = (middle, high) if cost(blocks(middle)) <= budget_bytes else (low, middle)
    counts = blocks(low)
    for g in np.argsort(-ratio, kind="stable"):
        if counts[g] < top and cost(counts) + layout.bytes_per_block[g] <= budget_bytes:
            counts[g] += 1
    return np.arange(top)[None, :] < counts[:, None]


def start_config(
    layout: ElasticLayout, budget_bytes: int, popularity: np.ndarray, how: str
) -> np.ndarray:
    """What a budgeted device trains before any estimator (``federated.start_config``)."""
    if how == "popularity":
        return popularity_fit(layout, budget_bytes, popularity)
    return uniform_fit(layout, budget_bytes)
