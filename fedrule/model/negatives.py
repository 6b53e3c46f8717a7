"""Uniform negative sampling that avoids a user's known positives (vectorised)."""

from __future__ import annotations

import numpy as np


class NegativeSampler:
    """Draws items a user has not interacted with in training, uniformly over the catalogue.

    Collisions with positives are redrawn (a few rounds); a user who interacted with almost every
    item may keep a rare collision after the last round.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, rounds: int = 8) -> None:
        self.n_items = n_items
        self.rounds = rounds
        self.keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        if self.keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return self.keys[pos] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator, per_user: int = 1) -> np.ndarray:
        """Negatives of shape (len(users), per_user)."""
        users = np.repeat(users[:, None], per_user, axis=1)
        negatives = rng.integers(0, self.n_items, size=users.shape)
        for _ in range(self.rounds):
            clash = self.is_positive(users, negatives)
            if not clash.any():
                break
            negatives[clash] = rng.integers(0, self.n_items, size=int(clash.sum()))
        return negatives
