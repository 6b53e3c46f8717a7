"""One entry point for every searcher: ``search(name, layout, budget, predict, rng, **options)``.

``starts`` warm-starts a search with results found for smaller budgets (they fit this budget
too): each searcher seeds itself with their configurations, and the result is the best of the
searcher's configuration and the starts, so a larger budget never predicts worse than a smaller
one searched with the same predictor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.names import SEARCHER_NAMES
from fedrule.search.base import CountingPredict, Predict, SearchResult
from fedrule.search.evolution import evolution
from fedrule.search.greedy import greedy
from fedrule.search.randomsearch import random_search
from fedrule.search.uniform import uniform

Searcher = Callable[..., np.ndarray]

SEARCHERS: dict[str, Searcher] = dict(
    zip(SEARCHER_NAMES, (evolution, greedy, uniform, random_search), strict=True)
)
"""Each searcher of ``fedrule.names.SEARCHER_NAMES``, by name, in that order."""


def search(
    name: str,
    layout: ElasticLayout,
    budget_bytes: int,
    predict: Predict,
    rng: np.random.Generator,
    starts: Sequence[SearchResult] = (),
    **options: object,
) -> SearchResult:
    """The best configuration ``name`` finds that fits ``budget_bytes`` (a ``BudgetError`` if
    even the smallest configuration does not), with its predicted score and the search cost.

    ``starts``: results of the same predictor at other budgets; those that fit seed the search,
    and one whose recorded prediction is at least the found one's is returned instead."""
    if name not in SEARCHERS:
        raise ValueError(f"unknown searcher {name!r}; expected one of: {', '.join(SEARCHERS)}")
    budget_bytes = int(budget_bytes)
    layout.check_budget(budget_bytes)
    fitting = [s for s in starts if s.bytes <= budget_bytes and layout.is_valid(s.config)]
    seeds = np.stack([s.config for s in fitting]) if fitting else None
    counted = CountingPredict(predict)
    started = time.perf_counter()
    config = SEARCHERS[name](layout, budget_bytes, counted, rng, starts=seeds, **options)
    predicted = float(counted(config)[0])
    best = max(fitting, key=lambda s: s.predicted, default=None)
    if best is not None and best.predicted > predicted:  # its recorded value: exact monotonicity
        config, predicted = best.config, best.predicted
    seconds = time.perf_counter() - started
    size = layout.memory_bytes(config)
    if size > budget_bytes or not layout.is_valid(config):  # a searcher bug, never user input
        raise RuntimeError(f"{name} returned an invalid configuration ({size} bytes)")
    return SearchResult(config, size, predicted, counted.evaluations, seconds, name)
