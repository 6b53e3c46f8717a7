"""Retrain-free customisation: from labelled configurations to one configuration per budget.

The glue that the centralised RULE run and the federated server share: fit the estimator on
labels, search each budget with the scenario's searcher (all budgets of a run in increasing
order, each warm-started with the smaller budgets' results: ``search_all``), and the uniform
configuration a budgeted device trains before any estimator exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fedrule import seeds
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario.schema import EstimatorConfig, SearchConfig
from fedrule.search.base import uniform_blocks
from fedrule.search.estimator import PerformanceEstimator, fit_estimator
from fedrule.search.features import group_popularity_share
from fedrule.search.sampling import sample_configs
from fedrule.search.searchers import SearchResult
from fedrule.search.searchers import search as search_budget

__all__ = ["fit", "sample_configs", "search", "search_all", "uniform_fit"]


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
    return found


def uniform_fit(layout: ElasticLayout, budget_bytes: int) -> np.ndarray:
    """The largest uniform configuration (first k blocks of every group) within the budget."""
    layout.check_budget(budget_bytes)
    return layout.uniform_config(uniform_blocks(layout, budget_bytes))
