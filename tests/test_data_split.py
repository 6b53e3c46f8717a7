"""Per-user splits, the CSR container and the row filters, on hand-checked tiny logs."""

from __future__ import annotations

import numpy as np
import pytest

from fedrule.data import (
    Interactions,
    UserItems,
    dedupe,
    generate_synthetic,
    kcore,
    split_data,
    to_implicit,
)
from fedrule.data.interactions import from_columns
from fedrule.errors import DataError


def log(rows: list[tuple], *, ratings: bool = False, timestamps: bool = True) -> Interactions:
    """rows: (user, item[, rating][, timestamp]) tokens in file order."""
    cols = list(zip(*[[str(v) for v in r] for r in rows], strict=True))
    rating = cols[2] if ratings else None
    ts = cols[-1] if timestamps else None
    return from_columns(cols[0], cols[1], rating, ts, name="t", path="t")


def items_of(rows: UserItems, data: Interactions, user: str) -> list[str]:
    u = list(data.user_ids).index(user)
    return [data.item_ids[i] for i in rows.of(u)]


# user a: 5 rows, ts ties at 30 (rows c then e: e is later in the file) -> test e, valid c
# user b: 3 rows; user c: 2 rows (not evaluated)
ROWS = [
    ("a", "x", 10),
    ("b", "x", 5),
    ("a", "y", 40),
    ("a", "c", 50),
    ("c", "x", 1),
    ("b", "y", 7),
    ("a", "e", 50),
    ("a", "z", 20),
    ("b", "z", 6),
    ("c", "y", 2),
]


def test_loo_picks_latest_with_file_order_ties() -> None:
    data = log(ROWS)
    s = split_data(data, "loo")
    assert items_of(s.test, data, "a") == ["e"]  # ts tie 50: e comes after c in the file
    assert items_of(s.valid, data, "a") == ["c"]
    assert items_of(s.train, data, "a") == ["x", "z", "y"]  # chronological
    assert items_of(s.test, data, "b") == ["y"] and items_of(s.valid, data, "b") == ["z"]
    assert items_of(s.train, data, "b") == ["x"]
    assert items_of(s.train, data, "c") == ["x", "y"]
    assert items_of(s.test, data, "c") == [] and items_of(s.valid, data, "c") == []
    assert s.eval_users().tolist() == [0, 1]  # a, b
    assert s.train.nnz + s.valid.nnz + s.test.nnz == data.n_interactions


def test_two_interaction_users_evaluated_like_recbole() -> None:
    data = log(ROWS)
    s = split_data(data, "loo", min_evaluate=2)
    # c (2 rows): its latest item is the test item, the other trains, no validation item
    assert items_of(s.test, data, "c") == ["y"] and items_of(s.train, data, "c") == ["x"]
    assert items_of(s.valid, data, "c") == []
    assert items_of(s.test, data, "a") == ["e"] and items_of(s.valid, data, "a") == ["c"]
    assert s.eval_users().tolist() == [0, 1, 2] and s.eval_users("valid").tolist() == [0, 1]
    assert s.skipped_users() == 0 and s.summary()["skipped_users"] == 0
    r = split_data(data, "ratio", min_evaluate=2)
    assert r.train.counts().tolist()[2] == 1 and r.test.counts().tolist()[2] == 1
    assert r.valid.counts().tolist()[2] == 0
    default = split_data(data, "loo")
    assert default.skipped_users() == 1 and default.min_evaluate == 3
    assert "1 with fewer than 3 interactions train only" in default.describe("loo")
    assert split_data(data, "loo", min_evaluate=6).skipped_users() == 3
    with pytest.raises(DataError, match="data.min_interactions_to_evaluate"):
        split_data(data, min_evaluate=1)


def test_split_parts_are_disjoint_and_conserve_counts() -> None:
    data = generate_synthetic(200, 300, 12, seed=1)
    for method in ("loo", "ratio"):
        s = split_data(data, method)
        assert s.train.nnz + s.valid.nnz + s.test.nnz == data.n_interactions
        np.testing.assert_array_equal(
            s.train.counts() + s.valid.counts() + s.test.counts(), data.per_user_counts()
        )
        for u in range(0, data.n_users, 7):
            train = set(s.train.of(u).tolist())
            assert not train & set(s.test.of(u).tolist())
            assert not train & set(s.valid.of(u).tolist())
            assert not set(s.valid.of(u).tolist()) & set(s.test.of(u).tolist())
        # the test item is each user's latest interaction
        t_of = {(u, i): t for u, i, t in zip(data.user, data.item, data.timestamp, strict=True)}
        for u in range(0, data.n_users, 11):
            latest = max(t_of[(u, int(i))] for i in s.train.of(u))
            assert all(t_of[(u, int(i))] >= latest for i in s.test.of(u))


def test_ratio_split_sizes_by_hand() -> None:
    # user a: 10 rows -> 8/1/1; user b: 4 rows -> round(0.4)=0 -> 1 test, 1 valid, 2 train
    rows = [("a", f"i{k}", k) for k in range(10)] + [("b", f"i{k}", k) for k in range(4)]
    data = log(rows)
    s = split_data(data, "ratio", ratios=(0.8, 0.1, 0.1))
    assert s.train.counts().tolist() == [8, 2]
    assert s.valid.counts().tolist() == [1, 1]
    assert s.test.counts().tolist() == [1, 1]
    assert items_of(s.test, data, "a") == ["i9"] and items_of(s.valid, data, "a") == ["i8"]
    s = split_data(data, "ratio", ratios=(0.5, 0.25, 0.25))  # a: 10*0.25=2.5 -> 3 (half up)
    assert s.test.counts().tolist() == [3, 1] and s.valid.counts().tolist() == [3, 1]
    assert s.train.counts().tolist() == [4, 2]
    s = split_data(data, "ratio", ratios=(0.7, 0.0, 0.3))  # no validation part
    assert s.valid.nnz == 0 and s.test.counts().tolist() == [3, 1]


def test_bad_split_arguments() -> None:
    data = log(ROWS)
    with pytest.raises(DataError, match="did you mean 'loo'"):
        split_data(data, "lo")
    with pytest.raises(DataError, match="summing to 1"):
        split_data(data, "ratio", ratios=(0.5, 0.1, 0.1))


def test_no_timestamps_shuffle_is_seeded() -> None:
    rows = [(f"u{u}", f"i{k}") for u in range(20) for k in range(8)]
    data = log(rows, timestamps=False)
    a, b, c = (split_data(data, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.test.items, b.test.items)
    np.testing.assert_array_equal(a.train.items, b.train.items)
    assert not np.array_equal(a.test.items, c.test.items)
    assert a.test.nnz == 20 and a.valid.nnz == 20 and a.train.nnz == 120
    assert (a.order, a.seed, c.seed) == ("shuffle", 0, 1)
    assert "seeded per-user shuffle (no timestamps; data.split_seed=1)" in c.describe("loo")


def test_user_items_helpers() -> None:
    ui = UserItems.from_coo(np.array([2, 0, 2, 0]), np.array([5, 1, 3, 4]), n_users=3)
    assert ui.indptr.tolist() == [0, 2, 2, 4] and ui.items.tolist() == [1, 4, 5, 3]
    assert ui.counts().tolist() == [2, 0, 2] and ui.nnz == 4 and ui.n_users == 3
    assert ui.of(2).tolist() == [5, 3]
    users, items = ui.to_coo()
    assert users.tolist() == [0, 0, 2, 2] and items.tolist() == [1, 4, 5, 3]
    mask = ui.to_dense_mask(np.array([2, 1, 0]), n_items=6)
    assert mask.shape == (3, 6) and mask.dtype == bool
    assert np.flatnonzero(mask[0]).tolist() == [3, 5]
    assert not mask[1].any()
    assert np.flatnonzero(mask[2]).tolist() == [1, 4]
    sub = ui.select_users(np.array([2]))
    assert sub.indptr.tolist() == [0, 0, 0, 2] and sub.items.tolist() == [5, 3]


def test_item_popularity_and_subset() -> None:
    data = log(ROWS)
    s = split_data(data)
    pop = s.item_popularity()
    assert pop.sum() == s.train.nnz and len(pop) == data.n_items
    sub = s.subset_users(np.array([1]))
    assert sub.n_users == s.n_users and sub.train.nnz == 1 and sub.test.nnz == 1


def test_to_implicit_and_dedupe() -> None:
    rows = [("a", "x", 5, 3), ("b", "x", 2, 1), ("a", "y", 4, 2), ("a", "x", 1, 9)]
    data = log(rows, ratings=True)
    assert to_implicit(data, None) is data
    imp = to_implicit(data, 4)
    assert imp.n_interactions == 2 and list(imp.user_ids) == ["a"]
    assert list(imp.item_ids) == ["x", "y"]
    d = dedupe(data)
    assert d.n_interactions == 3
    assert d.timestamp.tolist() == [3, 1, 2]  # the first ("a","x") row is kept
    with pytest.raises(DataError, match="no ratings"):
        to_implicit(log(ROWS), 4)


def test_kcore_iterates_and_reindexes() -> None:
    # item z has 1 row -> drop; then user c has 1 row -> drop; then item w has 1 row -> drop
    rows = [
        ("a", "x", 1),
        ("c", "w", 2),
        ("a", "y", 3),
        ("b", "x", 4),
        ("b", "y", 5),
        ("c", "z", 6),
        ("a", "w", 7),
    ]
    core = kcore(log(rows), k_user=2, k_item=2)
    assert core.n_interactions == 4
    assert list(core.user_ids) == ["a", "b"] and list(core.item_ids) == ["x", "y"]
    assert core.user.tolist() == [0, 0, 1, 1] and core.item.tolist() == [0, 1, 0, 1]
    assert core.timestamp.tolist() == [1, 3, 4, 5]
    with pytest.raises(DataError, match="empty"):
        kcore(log(rows), k_user=10)
