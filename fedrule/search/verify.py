"""Verified choice: the searched configurations are checked against real validation quality.

The estimator is fitted on a few hundred labelled configurations, and a search optimises its
prediction, so the search can land where the estimator over-predicts (on ML-100K a searched
configuration at the full budget was predicted above the full table and measured 18% below it).
Verification measures a handful of candidates for real, in one labelling: every budget's
searched configuration, its largest uniform configuration, its popularity fit (blocks per
group in proportion to the group's mean item popularity, the shape of mixed-dimension
embeddings: where the estimator extrapolates, at large budgets, it is often the best measured
one) and in budgeted mode the configuration its devices trained from the start. Each budget
then takes the candidate that fits it with the best measured quality. A budget's candidates
include every smaller budget's, so the measured quality of the choice never falls as the
budget grows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.search.base import SearchResult, uniform_blocks
from fedrule.search.customize import popularity_fit


def candidates(
    layout: ElasticLayout,
    found: dict[int, SearchResult],
    trained: dict[int, np.ndarray] | None = None,
    popularity: np.ndarray | None = None,
) -> np.ndarray:
    """The distinct configurations to measure (C x G x B): each budget's searched one, its
    largest uniform one, its popularity fit (with the items' ``popularity``) and (``trained``,
    budgeted mode) the one its devices trained from the start, in increasing budget order."""
    stack: list[np.ndarray] = []
    for budget in sorted(found):
        uniform = layout.uniform_config(uniform_blocks(layout, budget))
        extra = [] if popularity is None else [popularity_fit(layout, budget, popularity)]
        if trained is not None and budget in trained:
            extra.append(trained[budget])
        for config in (found[budget].config, uniform, *extra):
            if not any(np.array_equal(config, seen) for seen in stack):
                stack.append(np.asarray(config, dtype=bool))
    return np.stack(stack)


def choose(
    layout: ElasticLayout,
    found: dict[int, SearchResult],
    configs: np.ndarray,
    measured: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
) -> dict[int, SearchResult]:
    """Per budget, the candidate that fits with the best measured quality (ties: the larger
    one, then the earlier). ``measured`` NaN (nobody measured it) never wins."""
    sizes = np.array([layout.memory_bytes(c) for c in configs])
    value = np.where(np.isnan(measured), -np.inf, measured)
    predicted = predict(configs)
    chosen: dict[int, SearchResult] = {}
    for budget, result in found.items():
        fits = np.flatnonzero(sizes <= budget)
        best = fits[np.lexsort((-sizes[fits], -value[fits]))[0]]
        chosen[budget] = dataclasses.replace(
            result,
            config=configs[best],
            bytes=int(sizes[best]),
            predicted=float(predicted[best]),
            measured=float(measured[best]),
        )
    return chosen
