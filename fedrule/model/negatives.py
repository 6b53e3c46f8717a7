"""Negative sampling that avoids a user's known positives (vectorised): uniform over the
catalogue, or in proportion to a power of item popularity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DENSE_LIMIT = 1 << 27  # users x items up to this: a dense bit table answers "is positive?"
REDRAWS = 8  # rounds of redrawing negatives that clash with a positive (then as many uniform)


def popularity_weights(popularity: np.ndarray, exponent: float) -> np.ndarray | None:
    """Sampling weights ``(count + 1) ** exponent`` per item (None for 0: uniform). The +1 gives
    items never seen in training a chance to be drawn."""
    if exponent == 0:
        return None
    return (np.asarray(popularity, dtype=np.float64) + 1.0) ** exponent


class ItemDistribution:
    """Draws items with probability proportional to ``weights``: item i for a uniform u when
    ``cdf[i - 1] <= u < cdf[i]`` (``np.searchsorted(cdf, u, side="right")``), found through a
    guide table of 2^k >= 4 n equal slices of [0, 1) instead of a binary search per draw
    (the same items, about twice as fast)."""

    def __init__(self, weights: np.ndarray) -> None:
        cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
        self.cdf = cdf / cdf[-1]
        self.slices = 1 << max(4, int(np.ceil(np.log2(4 * self.cdf.size))))
        # per slice k: the first item whose cdf exceeds its start k / slices (exact: a power of 2)
        self.guide = np.searchsorted(self.cdf, np.arange(self.slices) / self.slices, side="right")

    def items(self, u: np.ndarray) -> np.ndarray:
        """The item of each uniform draw ``u`` in [0, 1) (any shape)."""
        flat = np.ravel(u)
        index = self.guide[(flat * self.slices).astype(np.int64)]  # u * 2^k, floored: exact
        last = self.cdf.size - 1
        ahead = np.flatnonzero(self.cdf[np.minimum(index, last)] <= flat)
        while ahead.size:  # walk on through the items that end inside u's slice
            index[ahead] += 1
            ahead = ahead[self.cdf[np.minimum(index[ahead], last)] <= flat[ahead]]
        return np.minimum(index, last).reshape(np.shape(u))

    def draw(self, rng: np.random.Generator, size: int | tuple) -> np.ndarray:
        return self.items(rng.random(size))


def draw_items(
    rng: np.random.Generator, n_items: int, size: int | tuple, by: ItemDistribution | None
) -> np.ndarray:
    """Items drawn uniformly, or ``by`` a distribution over them."""
    return rng.integers(0, n_items, size=size) if by is None else by.draw(rng, size)


def redraw_clashes(
    negatives: np.ndarray,
    clashes: Callable[[np.ndarray], np.ndarray],
    draw: Callable[[np.ndarray, bool], np.ndarray],
    rounds: int = REDRAWS,
) -> None:
    """Redraw, in place, the entries of ``negatives`` (flat) that are positives: ``clashes``
    says which of the given entries are, ``draw(at, uniform)`` draws anew for the entries ``at``
    (ascending). Weighted draws can hit a user's popular positives again and again, so after
    ``rounds`` rounds drawn as before, as many more are drawn uniformly; only the entries that
    clashed are redrawn and checked."""
    clash = np.flatnonzero(clashes(np.arange(negatives.size)))
    for r in range(2 * rounds):
        if clash.size == 0:
            break
        negatives[clash] = draw(clash, r >= rounds)
        clash = clash[clashes(clash)]


class NegativeSampler:
    """Draws items a user has not interacted with in training, uniformly over the catalogue or,
    with ``weights``, item i with probability proportional to ``weights[i]`` (popularity-aware
    negatives: popular items are drawn more often, so they are pushed down more than tail ones).

    Collisions with positives are redrawn (a few rounds); a user who interacted with almost every
    item may keep a rare collision after the last round. Positives are looked up in a dense
    user x item table where it is small enough (one byte per pair), else in sorted keys.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        n_items: int,
        rounds: int = REDRAWS,
        weights: np.ndarray | None = None,
    ) -> None:
        self.n_items = n_items
        self.rounds = rounds
        self.by = None if weights is None else ItemDistribution(weights)
        keys = users.astype(np.int64) * n_items + items.astype(np.int64)
        n_users = int(users.max()) + 1 if users.size else 0
        self.dense: np.ndarray | None = None
        if n_users * n_items <= DENSE_LIMIT:
            self.dense = np.zeros(n_users * n_items, dtype=bool)
            self.dense[keys] = True
        else:
            self.keys = np.unique(keys)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        if self.dense is not None:
            if keys.size and keys.max() >= self.dense.size:  # users without any positive
                inside = keys < self.dense.size
                return np.where(inside, self.dense.take(np.where(inside, keys, 0)), False)
            return self.dense.take(keys)
        if self.keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return self.keys[pos] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator, per_user: int = 1) -> np.ndarray:
        """Negatives of shape (len(users), per_user)."""
        users = np.repeat(users, per_user)
        negatives = draw_items(rng, self.n_items, users.size, self.by)
        redraw_clashes(
            negatives,
            lambda at: self.is_positive(users[at], negatives[at]),
            lambda at, uniform: draw_items(
                rng, self.n_items, at.size, None if uniform else self.by
            ),
            self.rounds,
        )
        return negatives.reshape(-1, per_user)
