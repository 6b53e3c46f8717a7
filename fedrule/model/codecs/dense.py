"""The decoded form of codecs whose payload rebuilds a plain item table (hashing, QR)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SINGLE_CONFIG = np.ones((1, 1), dtype=bool)
"""The one configuration of a fixed-size codec: the whole payload (its shape is (1, 1))."""


def check_single_config(config: np.ndarray) -> None:
    """A fixed-size codec offers one configuration; anything else is a caller's mistake."""
    if np.asarray(config).shape != (1, 1) or not bool(np.asarray(config).all()):
        raise ValueError("this codec has one configuration, full_config() (shape (1, 1))")


class SingleConfigCodec:
    """The configuration side of the ``ItemCodec`` protocol for a fixed-size codec: one
    configuration, the whole payload. Subclasses give ``memory_bytes``, ``encode``, ``decode``."""

    def memory_bytes(self, config: np.ndarray) -> int:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        return SINGLE_CONFIG.shape

    def full_config(self) -> np.ndarray:
        return SINGLE_CONFIG.copy()

    def min_bytes(self) -> int:
        return self.memory_bytes(SINGLE_CONFIG)


@dataclass(frozen=True, eq=False)
class DenseTable:
    """A decoded payload: the n x d item table each item scores with (``ReceivedTable``)."""

    config: np.ndarray
    table: torch.Tensor

    def score(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """Scores of all items for each user vector (u x d)."""
        return user_vectors @ self.table.T
