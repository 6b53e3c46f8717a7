"""Negative sampling that avoids a user's known positives (vectorised): uniform over the
catalogue, or in proportion to a power of item popularity."""

from __future__ import annotations

import numpy as np

DENSE_LIMIT = 1 << 27  # users x items up to this: a dense bit table answers "is positive?"


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
        rounds: int = 8,
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
        negatives = self._draw(rng, users.size)
        clash = np.flatnonzero(self.is_positive(users, negatives))
        for r in range(2 * self.rounds):  # only the draws that clashed are redrawn and checked
            if clash.size == 0:
                break
            # weighted draws can clash again and again with a user's popular positives: the
            # second half of the rounds redraws uniformly
            negatives[clash] = self._draw(rng, clash.size, uniform=r >= self.rounds)
            clash = clash[self.is_positive(users[clash], negatives[clash])]
        return negatives.reshape(-1, per_user)

    def _draw(self, rng: np.random.Generator, size: int, uniform: bool = False) -> np.ndarray:
        if self.by is None or uniform:
            return rng.integers(0, self.n_items, size=size)
        return self.by.draw(rng, size)
