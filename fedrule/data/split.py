"""Per-user train / validation / test splits, stored as CSR rows of items per user.

Order within a user: by timestamp, ties kept in source-file order. Without timestamps, each
user's rows are shuffled by random keys from ``numpy.random.default_rng(seed)`` (the same
seed gives the same split; a scenario's ``data.split_seed``, not its training seeds).

* ``loo`` (leave-one-out, the default): a user's latest interaction is the test item, the
  second latest the validation item, the rest train.
* ``ratio``: a user's latest ``round(n * test)`` interactions are test, the
  ``round(n * valid)`` before them validation, the rest train (``round`` rounds halves up).
  A user with at least 3 interactions gets at least 1 test item and, if the validation ratio
  is positive, at least 1 validation item; train always keeps at least 1.

Users with fewer than ``min_evaluate`` interactions (default 3) put all of them in train: they
still train but have no validation or test item, so they are not evaluated. With
``min_evaluate=2`` (RecBole's leave-one-out), a user with 2 interactions gets 1 train and 1
test item and no validation item.

Train rows keep items in chronological order. Everything is vectorized (no per-user loop).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from fedrule.data.interactions import Interactions
from fedrule.errors import DataError, did_you_mean
from fedrule.names import SPLIT_METHODS

MIN_EVAL_INTERACTIONS = 3


@dataclass(frozen=True, eq=False)
class UserItems:
    """Items of each user in CSR form: ``items[indptr[u]:indptr[u + 1]]`` belong to user ``u``."""

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_coo(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> UserItems:
        """Group (user, item) pairs by user, keeping the given order within each user."""
        users = np.asarray(users, dtype=np.int64)
        order = np.argsort(users, kind="stable")
        counts = np.bincount(users, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr=indptr, items=np.asarray(items, dtype=np.int64)[order])

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def counts(self) -> np.ndarray:
        """Number of items of each user (int64, length ``n_users``)."""
        return np.diff(self.indptr)

    def of(self, user: int) -> np.ndarray:
        """The items of one user (a view)."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def to_coo(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) arrays, grouped by user."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), self.counts())
        return users, self.items

    def gather(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs for a batch: ``row`` indexes ``users`` (0..len(users)-1)."""
        users = np.asarray(users, dtype=np.int64)
        starts = self.indptr[users]
        lengths = self.indptr[users + 1] - starts
        rows = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
        offsets = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.arange(offsets[-1], dtype=np.int64) - offsets[rows] + starts[rows]
        return rows, self.items[positions]

    def to_dense_mask(self, users: np.ndarray, n_items: int) -> np.ndarray:
        """A ``[len(users), n_items]`` bool array, True where the user has the item.

        (Use ``torch.from_numpy`` for a ``torch.BoolTensor``.)
        """
        rows, items = self.gather(users)
        mask = np.zeros((len(np.atleast_1d(users)), n_items), dtype=bool)
        mask[rows, items] = True
        return mask

    def select_users(self, users: np.ndarray) -> UserItems:
        """Same users and numbering; only the rows of ``users`` are kept, the others empty."""
        keep = np.zeros(self.n_users, dtype=bool)
        keep[np.asarray(users, dtype=np.int64)] = True
        counts = np.where(keep, self.counts(), 0)
        indptr = np.zeros_like(self.indptr)
        np.cumsum(counts, out=indptr[1:])
        row_of_item = np.repeat(keep, self.counts())
        return UserItems(indptr=indptr, items=self.items[row_of_item])


@dataclass(frozen=True, eq=False)
class SplitData:
    """A split dataset: CSR train / valid / test items per user plus the id tokens."""

    n_users: int
    n_items: int
    train: UserItems
    valid: UserItems
    test: UserItems
    user_ids: np.ndarray
    item_ids: np.ndarray
    name: str
    order: Literal["timestamp", "shuffle"] = "timestamp"
    seed: int = 0
    min_evaluate: int = MIN_EVAL_INTERACTIONS

    def item_popularity(self) -> np.ndarray:
        """Training interactions per item (int64, length ``n_items``)."""
        return np.bincount(self.train.items, minlength=self.n_items).astype(np.int64)

    def eval_users(self, part: Literal["valid", "test"] = "test") -> np.ndarray:
        """Users with at least one item in ``part`` (sorted int64 ids)."""
        rows = self.valid if part == "valid" else self.test
        return np.flatnonzero(rows.counts() > 0).astype(np.int64)

    def skipped_users(self) -> int:
        """Users with training items but too few interactions to be evaluated."""
        has_train = self.train.counts() > 0
        return int(np.count_nonzero(has_train & (self.test.counts() == 0)))

    def describe(self, method: str) -> str:
        """One line saying which split ran, for the log."""
        kind = {"loo": "leave-one-out", "ratio": "ratio split"}.get(method, method)
        if self.order == "timestamp":
            how = f"{kind} by timestamp (ties in file order)"
        else:
            how = (
                f"{kind} on a seeded per-user shuffle (no timestamps; data.split_seed={self.seed})"
            )
        skipped = self.skipped_users()
        return (
            f"split: {how}; {len(self.eval_users('test'))} users evaluated, {skipped} with fewer "
            f"than {self.min_evaluate} interactions train only (data.min_interactions_to_evaluate)"
        )

    def subset_users(self, users: np.ndarray) -> SplitData:
        """The same split restricted to ``users`` (global numbering kept; others have no rows)."""
        return replace(
            self,
            train=self.train.select_users(users),
            valid=self.valid.select_users(users),
            test=self.test.select_users(users),
        )

    def summary(self) -> dict:
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "train": self.train.nnz,
            "valid": self.valid.nnz,
            "test": self.test.nnz,
            "eval_users": len(self.eval_users("test")),
            "skipped_users": self.skipped_users(),
            "order": self.order,
        }


def _user_order(inter: Interactions, seed: int) -> np.ndarray:
    """Row order grouped by user; within a user chronological (ties: file order) or shuffled."""
    if inter.timestamp is not None:
        within = inter.timestamp
    else:
        within = np.random.default_rng(seed).random(inter.n_interactions)
    first = np.argsort(within, kind="stable")
    return first[np.argsort(inter.user[first], kind="stable")]


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def _check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    try:
        train, valid, test = (float(r) for r in ratios)
    except (TypeError, ValueError):
        raise DataError(
            f"expected three numbers (train, valid, test), got {ratios!r}", path="data.ratios"
        ) from None
    if train <= 0 or valid < 0 or test <= 0 or abs(train + valid + test - 1.0) > 1e-6:
        raise DataError(
            f"expected train > 0, valid >= 0, test > 0 summing to 1, got {ratios!r}",
            path="data.ratios",
        )
    return train, valid, test


def split_data(
    inter: Interactions,
    method: str = "loo",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    min_evaluate: int = MIN_EVAL_INTERACTIONS,
) -> SplitData:
    """Split each user's interactions into train / valid / test (see the module docstring).

    ``seed`` orders users' interactions when there are no timestamps; users with fewer than
    ``min_evaluate`` (>= 2) interactions keep them all in train.
    """
    if method not in SPLIT_METHODS:
        raise DataError(
            f"unknown split method '{method}'",
            path="data.split",
            hint=did_you_mean(method, SPLIT_METHODS),
        )
    if isinstance(min_evaluate, bool) or not isinstance(min_evaluate, int) or min_evaluate < 2:
        raise DataError(
            f"expected a whole number >= 2, got {min_evaluate!r}",
            path="data.min_interactions_to_evaluate",
            hint="a user needs a train and a test interaction",
        )
    order = _user_order(inter, seed)
    user = inter.user[order]
    item = inter.item[order]
    counts = np.bincount(user, minlength=inter.n_users).astype(np.int64)
    starts = np.zeros(inter.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    from_end = starts[user + 1] - np.arange(len(user), dtype=np.int64)  # 1 = the latest row
    if method == "loo":
        n_test = np.ones(inter.n_users, dtype=np.int64)
        n_valid = np.ones(inter.n_users, dtype=np.int64)
    else:
        _, r_valid, r_test = _check_ratios(ratios)
        n_test = np.clip(_round_half_up(counts * r_test), 1, np.maximum(counts - 2, 1))
        room = np.maximum(counts - 1 - n_test, 1)
        n_valid = np.clip(_round_half_up(counts * r_valid), 1 if r_valid > 0 else 0, room)
    evaluated = counts >= min_evaluate
    n_test = np.where(evaluated, n_test, 0)
    # 2 interactions (min_evaluate=2): 1 train, 1 test, no validation item
    n_valid = np.where(evaluated, np.minimum(n_valid, np.maximum(counts - 1 - n_test, 0)), 0)
    is_test = from_end <= n_test[user]
    is_valid = ~is_test & (from_end <= (n_test + n_valid)[user])
    is_train = ~(is_test | is_valid)

    def part(mask: np.ndarray) -> UserItems:
        c = np.bincount(user[mask], minlength=inter.n_users)
        indptr = np.zeros(inter.n_users + 1, dtype=np.int64)
        np.cumsum(c, out=indptr[1:])
        return UserItems(indptr=indptr, items=item[mask])

    return SplitData(
        n_users=inter.n_users,
        n_items=inter.n_items,
        train=part(is_train),
        valid=part(is_valid),
        test=part(is_test),
        user_ids=inter.user_ids,
        item_ids=inter.item_ids,
        name=inter.name,
        order="timestamp" if inter.timestamp is not None else "shuffle",
        seed=seed,
        min_evaluate=min_evaluate,
    )
