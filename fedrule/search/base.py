"""Shared pieces of the searchers: result, prediction counting, uniform start, block values, repair.

A searcher maximises ``predict(configs) -> scores`` (higher is better) over valid configurations
whose exact payload (``layout.memory_bytes``) fits the budget. ``predict`` takes a stack of
configurations (C x G x B) and is always called with batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedrule.model.elastic import ElasticLayout

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The chosen configuration, its payload bytes and predicted score, and the search's cost."""

    config: np.ndarray
    bytes: int
    predicted: float
    evaluations: int
    seconds: float
    searcher: str = ""
    measured: float = float("nan")  # real validation quality, when verified (search.verify)


class CountingPredict:
    """Wraps ``predict``: counts evaluated configurations, returns float64 arrays."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.evaluations = 0

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        configs = np.asarray(configs, dtype=bool)
        if configs.ndim == 2:
            configs = configs[None]
        if configs.shape[0] == 0:
            return np.zeros(0)
        self.evaluations += configs.shape[0]
        out = np.asarray(self.predict(configs), dtype=np.float64).reshape(-1)
        if out.shape[0] != configs.shape[0]:
            raise ValueError(f"predict returned {out.shape[0]} values for {configs.shape[0]}")
        return out


def uniform_blocks(layout: ElasticLayout, budget_bytes: int) -> int:
    """The largest ``k`` whose uniform configuration (first ``k`` blocks everywhere) fits.

    ``uniform_config(min_blocks)`` costs exactly ``layout.min_bytes()``, so after
    ``check_budget`` this is always at least ``min_blocks``.
    """
    per_layer = int(layout.bytes_per_block.sum())
    if per_layer == 0:
        return layout.num_blocks
    k = (budget_bytes - layout.metadata_bytes) // per_layer
    return int(min(layout.num_blocks, max(layout.min_blocks, k)))


def start_candidates(
    layout: ElasticLayout, budget_bytes: int, starts: np.ndarray | None = None
) -> np.ndarray:
    """Where a search may start: every uniform configuration that fits, the largest first, then
    ``starts`` (configurations found for smaller budgets). K x G x B."""
    top = uniform_blocks(layout, budget_bytes)
    uniform = [layout.uniform_config(k) for k in range(top, layout.min_blocks - 1, -1)]
    if starts is None or len(starts) == 0:
        return np.stack(uniform)
    return np.concatenate([np.stack(uniform), np.asarray(starts, dtype=bool)])


def best_start(
    layout: ElasticLayout, budget_bytes: int, predict: Predict, starts: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The best predicted of ``start_candidates`` (the first of equals) and its score."""
    candidates = start_candidates(layout, budget_bytes, starts)
    scores = predict(candidates)
    best = int(np.argmax(scores))
    return candidates[best], float(scores[best])


def block_values(layout: ElasticLayout, base: np.ndarray, predict: Predict) -> np.ndarray:
    """Estimated value of each (group, block) around ``base``: the predicted score with the
    block minus without it (one batched call of G*B single-block flips). G x B."""
    g, b = layout.shape
    flips = np.repeat(base[None], g * b, axis=0)
    cells = np.arange(g * b)
    flips.reshape(g * b, -1)[cells, cells] ^= True
    score = predict(np.concatenate([base[None], flips]))
    delta = (score[1:] - score[0]).reshape(g, b)
    return np.where(base, -delta, delta)


def repair(
    layout: ElasticLayout,
    config: np.ndarray,
    budget_bytes: int,
    value_per_byte: np.ndarray,
    protect: np.ndarray | None = None,
) -> np.ndarray:
    """Drop the least valuable blocks per byte until ``config`` fits (never below min_blocks).

    ``value_per_byte`` (G x B) orders the blocks; ``protect`` (G x B bool) marks blocks dropped
    only when nothing else can go. Returns a new array; the input is not changed.
    """
    config = config.copy()
    excess = layout.memory_bytes(config) - budget_bytes
    if excess <= 0:
        return config
    g, b = layout.shape
    value = value_per_byte.astype(np.float64)
    if protect is not None:
        value = np.where(protect, np.inf, value)
    order = np.lexsort((np.arange(g * b), value.ravel()))  # least valuable first
    kept = config.ravel()[order]
    groups = order // b
    # The j-th kept block of a group in this order may go if the group keeps more than
    # min_blocks + j blocks; whole droppable prefixes per group, cheapest value first.
    kept_positions = np.flatnonzero(kept)
    by_group = kept_positions[np.argsort(groups[kept_positions], kind="stable")]
    group_sorted = groups[by_group]
    first = np.searchsorted(group_sorted, group_sorted, side="left")
    rank = np.zeros(order.size, dtype=np.int64)
    rank[by_group] = np.arange(by_group.size) - first
    droppable = kept & (rank < config.sum(axis=1)[groups] - layout.min_blocks)
    positions = np.flatnonzero(droppable)
    freed = np.cumsum(layout.bytes_per_block[groups[positions]])
    stop = int(np.searchsorted(freed, excess)) + 1
    config.ravel()[order[positions[:stop]]] = False
    return config


def fill(
    layout: ElasticLayout,
    config: np.ndarray,
    budget_bytes: int,
    value_per_byte: np.ndarray,
    forbid: np.ndarray | None = None,
) -> np.ndarray:
    """Add missing blocks with a positive value, most valuable per byte first, while they fit.

    ``forbid`` (G x B bool) marks blocks not to add. Returns a new array.
    """
    config = config.copy()
    free = budget_bytes - layout.memory_bytes(config)
    b = layout.num_blocks
    cost = np.repeat(layout.bytes_per_block, b)
    open_cells = ~config.ravel() & (value_per_byte.ravel() > 0) & (cost <= free)
    if forbid is not None:
        open_cells &= ~forbid.ravel()
    cells = np.flatnonzero(open_cells)
    cells = cells[np.argsort(-value_per_byte.ravel()[cells], kind="stable")]
    while cells.size:  # first fit in value order, a fitting prefix at a time
        cells = cells[cost[cells] <= free]
        if not cells.size:
            break
        total = np.cumsum(cost[cells])
        take = int(np.searchsorted(total, free, side="right"))
        config.ravel()[cells[:take]] = True
        free -= int(total[take - 1])
        cells = cells[take:]
    return config


def cell_choice(rng: np.random.Generator, mask: np.ndarray) -> tuple[int, int] | None:
    """A uniformly chosen True cell of a G x B mask, or None."""
    cells = np.flatnonzero(mask)
    if cells.size == 0:
        return None
    cell = int(cells[rng.integers(cells.size)])
    return divmod(cell, mask.shape[1])
