"""Row filters on ``Interactions``. All are vectorized, keep the surviving rows in source
order, and re-index users/items compactly by first appearance among the kept rows (the id
token arrays follow, so ``user_ids[user]`` still names the same user).
"""

from __future__ import annotations

import numpy as np

from fedrule.data.interactions import Interactions
from fedrule.errors import DataError


def to_implicit(inter: Interactions, threshold: float | None) -> Interactions:
    """Keep rows with ``rating >= threshold``; ``None`` keeps every row (any rating counts)."""
    if threshold is None:
        return inter
    if inter.rating is None:
        raise DataError(
            f"dataset '{inter.name}' has no ratings, so a rating threshold cannot apply",
            path="data.rating_threshold",
            hint="set the threshold to null",
        )
    keep = inter.rating >= np.float32(threshold)
    if keep.all():
        return inter
    if not keep.any():
        raise DataError(
            f"no rating of '{inter.name}' reaches the threshold {threshold}",
            path="data.rating_threshold",
            hint=f"ratings range from {inter.rating.min():g} to {inter.rating.max():g}",
        )
    return inter.select(keep)


def dedupe(inter: Interactions) -> Interactions:
    """Drop repeated (user, item) pairs, keeping the FIRST occurrence in source order.

    (Its rating and timestamp are the ones kept; later repeats are dropped whatever their
    timestamp.)
    """
    if inter.n_interactions == 0:
        return inter
    keys = inter.user * np.int64(inter.n_items) + inter.item
    order = np.argsort(keys, kind="stable")  # equal keys stay in source order
    sorted_keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    if first.all():
        return inter
    return inter.select(np.sort(order[first]))


def kcore(inter: Interactions, k_user: int = 0, k_item: int = 0) -> Interactions:
    """Repeatedly drop users with fewer than ``k_user`` rows and items with fewer than
    ``k_item`` rows until both hold, then re-index compactly (0 or 1 disables a side).
    """
    keep = np.ones(inter.n_interactions, dtype=bool)
    while True:
        users, items = inter.user[keep], inter.item[keep]
        user_ok = np.bincount(users, minlength=inter.n_users) >= k_user
        item_ok = np.bincount(items, minlength=inter.n_items) >= k_item
        row_ok = user_ok[users] & item_ok[items]
        if row_ok.all():
            break
        keep[np.flatnonzero(keep)[~row_ok]] = False
    if keep.all():
        return inter
    if not keep.any():
        raise DataError(
            f"the {k_user}-user / {k_item}-item core of '{inter.name}' is empty",
            path="data.min_user_interactions",
            hint="lower data.min_user_interactions / data.min_item_interactions",
        )
    return inter.select(keep)
