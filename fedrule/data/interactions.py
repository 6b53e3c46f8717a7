"""The in-memory interaction log every source produces and every later stage consumes.

Invariants (checked cheaply on construction):

* ``user``/``item`` are int64 internal ids in ``0..n_users-1`` / ``0..n_items-1``;
* ids are assigned by order of first appearance in the rows (row 0's user is user 0);
* rows stay in source-file order;
* ``rating`` is float32 or None, ``timestamp`` is int64 (never a float) or None;
* ``user_ids[i]`` / ``item_ids[i]`` hold the original token (a ``str``) of internal id ``i``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fedrule.errors import DataError


@dataclass(frozen=True, eq=False)
class Interactions:
    """An interaction log: one row per (user, item[, rating][, timestamp]) event."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    timestamp: np.ndarray | None
    n_users: int
    n_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    name: str

    def __post_init__(self) -> None:
        n = len(self.user)
        if len(self.item) != n:
            raise ValueError("user and item arrays differ in length")
        for col, arr in (("rating", self.rating), ("timestamp", self.timestamp)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{col} array differs in length from user/item")
        if self.user.dtype != np.int64 or self.item.dtype != np.int64:
            raise ValueError("user and item must be int64 arrays")
        if self.timestamp is not None and self.timestamp.dtype != np.int64:
            raise ValueError("timestamp must be an int64 array")
        if self.rating is not None and self.rating.dtype != np.float32:
            raise ValueError("rating must be a float32 array")
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise ValueError("user_ids/item_ids must have n_users/n_items entries")

    @property
    def n_interactions(self) -> int:
        return len(self.user)

    def per_user_counts(self) -> np.ndarray:
        """Number of rows of each user (int64, length ``n_users``)."""
        return np.bincount(self.user, minlength=self.n_users).astype(np.int64)

    def per_item_counts(self) -> np.ndarray:
        """Number of rows of each item (int64, length ``n_items``)."""
        return np.bincount(self.item, minlength=self.n_items).astype(np.int64)

    def summary(self) -> dict:
        """Sizes, density and the quantiles of interactions per user."""
        counts = self.per_user_counts()
        cells = self.n_users * self.n_items
        q = np.percentile(counts, [0, 25, 50, 75, 100]) if len(counts) else np.zeros(5)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / cells if cells else 0.0,
            "has_ratings": self.rating is not None,
            "has_timestamps": self.timestamp is not None,
            "per_user": {
                "min": float(q[0]),
                "p25": float(q[1]),
                "p50": float(q[2]),
                "p75": float(q[3]),
                "max": float(q[4]),
            },
        }

    def select(self, rows: np.ndarray) -> Interactions:
        """The rows given by a boolean mask or an increasing index array, re-indexed compactly.

        Users and items that keep no row are dropped; the survivors are re-numbered by first
        appearance among the kept rows, and the token arrays follow.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        user, user_ids = _compact(self.user[rows], self.user_ids)
        item, item_ids = _compact(self.item[rows], self.item_ids)
        return Interactions(
            user=user,
            item=item,
            rating=None if self.rating is None else self.rating[rows],
            timestamp=None if self.timestamp is None else self.timestamp[rows],
            n_users=len(user_ids),
            n_items=len(item_ids),
            user_ids=user_ids,
            item_ids=item_ids,
            name=self.name,
        )


def _compact(ids: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-number ``ids`` by first appearance; returns (new ids, tokens of the new ids)."""
    n_old = len(tokens)
    first = np.full(n_old, len(ids), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(ids), dtype=np.int64))  # first row of each id
    present = np.flatnonzero(first < len(ids))
    old_in_order = present[np.argsort(first[present], kind="stable")]
    rank = np.full(n_old, -1, dtype=np.int64)
    rank[old_in_order] = np.arange(len(old_in_order), dtype=np.int64)
    return rank[ids], tokens[old_in_order]


def index_tokens(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Internal ids by first appearance for a column of tokens; returns (ids, token array)."""
    table = {token: i for i, token in enumerate(dict.fromkeys(tokens))}  # first-appearance order
    ids = np.fromiter(map(table.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    names = np.empty(len(table), dtype=object)
    names[:] = list(table)
    return ids, names


def parse_float32(values: Sequence[str], *, column: str, path: str) -> np.ndarray:
    """A column of numeric strings as float32, or a one-line DataError naming a bad value."""
    try:
        return np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise DataError(
            f"column '{column}' holds a non-numeric value {bad!r}",
            path=path,
            hint="expected numbers",
        ) from None


def parse_int64(values: Sequence[str], *, column: str, path: str) -> np.ndarray:
    """Integer strings ("881250949" or "881250949.0") as exact int64 (never via float32).

    A value with a non-zero fractional part is an error: timestamps must be whole seconds.
    """
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    out = np.empty(len(values), dtype=np.int64)
    for i, raw in enumerate(values):
        head, dot, frac = raw.strip().partition(".")
        try:
            if (dot and frac.strip("0")) or not head.lstrip("+-").isdigit():
                raise ValueError(raw)
            out[i] = int(head)
        except (ValueError, OverflowError):
            raise DataError(
                f"column '{column}' holds {raw!r}, not an integer timestamp",
                path=path,
                hint="expected whole seconds such as 881250949",
            ) from None
    return out


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


MISSING_IDS = frozenset({"", "nan", "na", "n/a", "nat", "null", "none", "<na>"})
"""How exports write a missing value (case-insensitive): a user or item id that reads as one
of these is an error naming its line, not a user or item called "NaN"."""


def check_ids(
    values: Sequence[str], column: str, path: str, line_of: Callable[[int], int] | None = None
) -> None:
    """A one-line ``DataError`` naming the file and line of the first missing id in ``values``
    (``line_of`` maps a row to its line; default: row + 1)."""
    missing = {v for v in set(values) if v.strip().lower() in MISSING_IDS}
    if not missing:
        return
    row = next(i for i, v in enumerate(values) if v in missing)
    line = line_of(row) if line_of is not None else row + 1
    shown = f"{values[row]!r}" if values[row].strip() else "empty"
    raise DataError(
        f"line {line}: the {column} id is missing ({shown})",
        path=path,
        hint="every row needs a user and an item id: drop or fill such rows",
    )


def from_columns(
    users: Sequence[str],
    items: Sequence[str],
    ratings: Sequence[str] | None,
    timestamps: Sequence[str] | None,
    *,
    name: str,
    path: str,
    rating_column: str = "rating",
    timestamp_column: str = "timestamp",
    line_of: Callable[[int], int] | None = None,
) -> Interactions:
    """Build ``Interactions`` from parsed string columns (rows in file order). A missing user or
    item id (``MISSING_IDS``) is an error naming its line (``line_of(row)``; default row + 1)."""
    if len(users) == 0:
        raise DataError("no interactions found", path=path, hint="the file has no data rows")
    check_ids(users, "user", path, line_of)
    check_ids(items, "item", path, line_of)
    user, user_ids = index_tokens(users)
    item, item_ids = index_tokens(items)
    rating = None if ratings is None else parse_float32(ratings, column=rating_column, path=path)
    ts = None
    if timestamps is not None:
        ts = parse_int64(timestamps, column=timestamp_column, path=path)
    return Interactions(
        user=user,
        item=item,
        rating=rating,
        timestamp=ts,
        n_users=len(user_ids),
        n_items=len(item_ids),
        user_ids=user_ids,
        item_ids=item_ids,
        name=name,
    )


_INT_TOKEN = re.compile(r"-?[1-9][0-9]*|0")


def original_ids(tokens: np.ndarray) -> np.ndarray | list[str]:
    """The original ids of internal ids ``0..n-1`` in their own type: an int64 array when every
    token is an integer written plainly (``"42"``, not ``"042"`` or ``"4.0"``) within int64,
    else a list of str. (Both load with ``torch.load(weights_only=True)`` once the array is a
    tensor.)"""
    strings = [str(t) for t in tokens]
    if all(_INT_TOKEN.fullmatch(s) for s in strings):
        values = [int(s) for s in strings]
        if all(-(2**63) <= v < 2**63 for v in values):
            return np.array(values, dtype=np.int64)
    return strings
