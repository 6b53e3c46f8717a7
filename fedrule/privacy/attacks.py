"""Attacks an honest-but-curious server mounts on what it received. Attacker code only: every
function here reads a message the server got (and what the server itself computed, such as the
aggregated popularity), never device data; ``fedrule.privacy.scorer`` holds the ground truth.

Each attack returns a ``Guess``: a score per item (higher: more likely one of the devices'
training items) and the set of items it names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Guess:
    score: np.ndarray  # per item
    named: np.ndarray  # per item: bool, the items the attack claims


def touched_rows(rows: np.ndarray, n_items: int) -> Guess:
    """Every uploaded row is a guess: positives and sampled negatives alike."""
    named = np.zeros(n_items, dtype=bool)
    named[rows] = True
    return Guess(named.astype(np.float64), named)


def update_norms(rows: np.ndarray, sum_wdelta: np.ndarray, n_items: int) -> Guess:
    """Uploaded rows ranked by the norm of their update (untouched rows last)."""
    norms = np.linalg.norm(sum_wdelta, axis=1)
    score = np.full(n_items, -1.0)
    score[rows] = norms
    named = np.zeros(n_items, dtype=bool)
    named[rows] = norms > np.median(norms) if norms.size else False
    return Guess(score, named)


def singular_vector(
    rows: np.ndarray, sum_wdelta: np.ndarray, popularity: np.ndarray, n_items: int
) -> Guess:
    """Label-free: a device's BPR row updates are about +u (positives) or -u (negatives) for its
    private user vector u, so the rows' projections on their top right singular vector split
    them in two; the half of higher mean popularity (positives are popular, negatives uniform)
    is named positive."""
    score = np.full(n_items, -np.inf)
    named = np.zeros(n_items, dtype=bool)
    if rows.size == 0:
        return Guess(score, named)
    _, _, vt = np.linalg.svd(sum_wdelta.astype(np.float64), full_matrices=False)
    projection = sum_wdelta @ vt[0]
    up, down = projection > 0, projection < 0
    popular_up = popularity[rows[up]].mean() if up.any() else -np.inf
    popular_down = popularity[rows[down]].mean() if down.any() else -np.inf
    if popular_down > popular_up:
        projection = -projection
    score[rows] = projection
    score[np.isinf(score)] = projection.min() - 1.0
    named[rows] = projection > 0
    return Guess(score, named)


def count_membership(counts: np.ndarray) -> Guess:
    """The popularity count reply: an item with a non-zero count is some device's item."""
    return Guess(np.asarray(counts, dtype=np.float64), np.asarray(counts) > 0)
