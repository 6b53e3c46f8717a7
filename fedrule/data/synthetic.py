"""A seeded, fully vectorized generator of power-law interaction logs.

* Item popularity is Zipf-like: the item of popularity rank ``r`` (1-based) is drawn with
  probability proportional to ``r ** -popularity_exponent``. Ranks are assigned to item ids
  by a seeded permutation, so an item's id says nothing about its popularity.
* User activity is Pareto-distributed with tail index ``activity_exponent`` (smaller = heavier
  tail), shifted to at least ``min_per_user`` and scaled so the mean is close to
  ``interactions_per_user``; a user never has more than ``n_items`` interactions.
* A user never interacts with the same item twice: draws are made with replacement and
  duplicates are re-drawn in a few vectorized rounds; the total ends close to
  ``n_users * interactions_per_user`` (a few rows short only when heavy users nearly exhaust
  the catalogue). A user gets at most half the catalogue unless the mean needs more.
* Rows are grouped by user (users in id order); within a user they are in chronological
  order of integer timestamps (seconds, within 2020) when ``with_timestamps`` is set.
* ``n_items`` is kept as requested even if some item is never drawn; tokens are the
  decimal strings of the ids. The same arguments and seed give identical arrays.
"""

from __future__ import annotations

import numpy as np

from fedrule.data.interactions import Interactions
from fedrule.errors import DataError

SYNTHETIC_KEYS = (
    "n_users",
    "n_items",
    "interactions_per_user",
    "popularity_exponent",
    "activity_exponent",
    "min_per_user",
    "with_timestamps",
    "seed",
)

_START = 1_577_836_800  # 2020-01-01T00:00:00Z
_YEAR = 366 * 24 * 3600
_MAX_ROUNDS = 12


def _check(
    n_users: int, n_items: int, mean: float, min_per_user: int, pop: float, act: float
) -> None:
    if n_users < 1:
        raise DataError(f"expected at least 1 user, got {n_users}", path="data.synthetic.n_users")
    if n_items < 1:
        raise DataError(f"expected at least 1 item, got {n_items}", path="data.synthetic.n_items")
    if min_per_user < 1:
        raise DataError(
            f"expected at least 1, got {min_per_user}", path="data.synthetic.min_per_user"
        )
    if not min_per_user <= mean <= n_items:
        raise DataError(
            f"expected a mean between min_per_user ({min_per_user}) and n_items ({n_items}), "
            f"got {mean}",
            path="data.synthetic.interactions_per_user",
        )
    if pop < 0:
        raise DataError(f"expected >= 0, got {pop}", path="data.synthetic.popularity_exponent")
    if act <= 0:
        raise DataError(f"expected > 0, got {act}", path="data.synthetic.activity_exponent")


def _activity(
    rng: np.random.Generator, n_users: int, n_items: int, mean: float, minimum: int, alpha: float
) -> np.ndarray:
    """Per-user interaction counts: ``minimum`` + a Pareto tail scaled to the requested mean.

    No user gets more than half the catalogue (unless the mean itself needs more).
    """
    cap = min(n_items, max(n_items // 2, int(np.ceil(mean)), minimum))
    lo = min(minimum, cap)
    raw = rng.pareto(alpha, size=n_users)  # Lomax: heavy tail, >= 0
    extra_mean = mean - lo
    if extra_mean <= 0 or raw.sum() == 0:
        return np.full(n_users, lo, dtype=np.int64)
    # Scale, clip at the catalogue, then rescale the unclipped part (a few fixed-point steps)
    # so the clipped total still averages ``mean``.
    target = extra_mean * n_users
    scale = target / raw.sum()
    for _ in range(8):
        extra = np.minimum(raw * scale, cap - lo)
        total = extra.sum()
        if total <= 0 or abs(total - target) < 0.5:
            break
        free = raw[raw * scale < cap - lo].sum() * scale
        if free <= 0:
            break
        scale *= 1 + (target - total) / free
    extra = np.minimum(raw * scale, cap - lo)
    # Stochastic rounding keeps the expected total exact.
    counts = lo + np.floor(extra + rng.random(n_users)).astype(np.int64)
    return np.minimum(counts, cap)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` via a plain sort (much faster than numpy 2's hash path on wide int64)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _shuffled_by_user(user: np.ndarray, n_users: int, rng: np.random.Generator) -> np.ndarray:
    """A row order grouped by user (ascending) with a random order within each user."""
    noise = rng.integers(0, 1 << 40, size=len(user), dtype=np.int64)
    if n_users < 1 << 22:  # one int64 key: user in the high bits, 40 random bits below
        return np.argsort((user << 40) | noise)
    by_noise = np.argsort(noise, kind="stable")
    return by_noise[np.argsort(user[by_noise], kind="stable")]


def _sample_items(
    rng: np.random.Generator, counts: np.ndarray, cdf: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) pairs without duplicates: ``counts[u]`` distinct items per user (or close).

    Round 0 draws exactly ``counts`` with replacement and drops repeats. Later rounds draw an
    increasing multiple of each user's shortfall, drop pairs already held, and keep a random
    subset of the new pairs up to the shortfall.
    """
    n_users = len(counts)
    keys = np.empty(0, dtype=np.int64)  # accepted user * n_items + item, sorted
    need = counts.copy()
    for round_ in range(_MAX_ROUNDS):
        total = int(need.sum())
        if total == 0:
            break
        factor = min(2**round_, 64)
        users = np.repeat(np.arange(n_users, dtype=np.int64), need * factor)
        draws = np.searchsorted(cdf, rng.random(len(users)) * cdf[-1], side="right")
        items = np.minimum(draws, n_items - 1).astype(np.int64)
        fresh = _sorted_unique(users * n_items + items)
        if len(keys):
            pos = np.minimum(np.searchsorted(keys, fresh), len(keys) - 1)
            fresh = fresh[keys[pos] != fresh]
        if factor > 1 and len(fresh):
            owner = fresh // n_items
            order = _shuffled_by_user(owner, n_users, rng)
            owner = owner[order]
            rank = np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")
            fresh = np.sort(fresh[order][rank < need[owner]])
        keys = np.sort(np.concatenate([keys, fresh])) if len(keys) else fresh
        need = need - np.bincount(fresh // n_items, minlength=n_users)
    return keys // n_items, keys % n_items


def generate_synthetic(
    n_users: int = 1000,
    n_items: int = 2000,
    interactions_per_user: float = 20.0,
    popularity_exponent: float = 1.0,
    activity_exponent: float = 1.5,
    seed: int = 0,
    with_timestamps: bool = True,
    *,
    min_per_user: int = 5,
    name: str = "synthetic",
) -> Interactions:
    """A synthetic interaction log with power-law item popularity and user activity."""
    n_users, n_items, min_per_user = int(n_users), int(n_items), int(min_per_user)
    mean = float(interactions_per_user)
    _check(n_users, n_items, mean, min_per_user, popularity_exponent, activity_exponent)
    rng = np.random.default_rng(seed)
    counts = _activity(rng, n_users, n_items, mean, min_per_user, activity_exponent)
    weights = np.arange(1, n_items + 1, dtype=np.float64) ** -float(popularity_exponent)
    cdf = np.cumsum(weights)
    rank_to_item = rng.permutation(n_items).astype(np.int64)
    user, rank = _sample_items(rng, counts, cdf, n_items)
    item = rank_to_item[rank]
    n = len(user)
    order = _shuffled_by_user(user, n_users, rng)  # rows come sorted by (user, rank)
    user, item = user[order], item[order]
    timestamp = None
    if with_timestamps:
        per_user = np.bincount(user, minlength=n_users)
        starts = np.concatenate([[0], np.cumsum(per_user)[:-1]])
        gaps = rng.exponential(6 * 3600.0, size=n).astype(np.int64) + 1
        csum = np.cumsum(gaps)
        before = np.concatenate([[0], csum])[starts]  # gap sum before each user's first row
        offset = rng.integers(0, _YEAR // 2, size=n_users, dtype=np.int64)
        timestamp = _START + offset[user] + (csum - before[user])
    ids = np.arange(max(n_users, n_items)).astype(str).astype(object)
    return Interactions(
        user=user,
        item=item,
        rating=None,
        timestamp=timestamp,
        n_users=n_users,
        n_items=n_items,
        user_ids=ids[:n_users].copy(),
        item_ids=ids[:n_items].copy(),
        name=name,
    )
