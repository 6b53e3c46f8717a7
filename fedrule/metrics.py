"""Full-ranking metrics as mergeable sums, and the batched ranking kernel behind them.

Every metric is a per-user value averaged over the users that have at least one relevant item
(overall, or in a popularity bucket). It is kept as a weighted *sum* and a *count*, so results
from devices, batches or workers add up with ``+`` and the mean is taken once at the end.
``MetricSums`` holds one value per metric; ``ConfigSums`` one value per metric and configuration
(many configurations ranked over the same users, e.g. estimator labels).

Ranking protocol: all items are ranked except the ones a caller masks out (score ``-inf``: the
user's training items, and validation items at test time). The rank of a relevant item is the
number of items scored strictly higher plus the number of equally scored items with a smaller
index (ties are broken by item index, deterministically); a NaN score ranks last. Binary
relevance; NDCG uses a log2 discount and an ideal DCG over ``min(|relevant|, K)``;
Recall@K = hits / |relevant|.

One kernel computes ranks (``RelevantRanks``: scores of c configurations at once, items laid out
in segments by an ``ItemOrder``) and one function turns ranks into per-user values
(``config_row_values``); the single-configuration helpers below are thin views of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

BUCKETS = ("head", "tail")
METRICS = ("recall", "ndcg", "hit")


# ------------------------------------------------------------------------------- metric sums
@dataclass
class MetricSums:
    """Sums and counts per metric name (e.g. ``ndcg@20``, ``tail/recall@10``); add with ``+``."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: MetricSums) -> MetricSums:
        sums = dict(self.sums)
        counts = dict(self.counts)
        for key, value in other.sums.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0.0) + other.counts[key]
        return MetricSums(sums, counts)

    def means(self) -> dict[str, float]:
        """Mean of each metric (NaN where nobody counted)."""
        return {
            key: (self.sums[key] / self.counts[key]) if self.counts[key] else float("nan")
            for key in self.sums
        }

    def to_arrays(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Sums and counts in the order of ``keys`` (for messages)."""
        return (
            np.array([self.sums.get(k, 0.0) for k in keys], dtype=np.float64),
            np.array([self.counts.get(k, 0.0) for k in keys], dtype=np.float64),
        )

    @classmethod
    def from_arrays(cls, keys: list[str], sums: np.ndarray, counts: np.ndarray) -> MetricSums:
        return cls(
            {k: float(s) for k, s in zip(keys, sums, strict=True)},
            {k: float(c) for k, c in zip(keys, counts, strict=True)},
        )


@dataclass
class ConfigSums:
    """Metric sums per configuration (``sums[key]``: one value per configuration) and counts.

    Counts do not depend on the configuration. Add parts (user batches, devices) with ``+``.
    """

    sums: dict[str, np.ndarray]
    counts: dict[str, float]

    @property
    def num_configs(self) -> int:
        return len(next(iter(self.sums.values()))) if self.sums else 0

    def __add__(self, other: ConfigSums) -> ConfigSums:
        if not self.sums:
            return other
        if not other.sums:
            return self
        if self.sums.keys() != other.sums.keys():
            raise ValueError("cannot add metric sums with different keys")
        return ConfigSums(
            {k: self.sums[k] + other.sums[k] for k in self.sums},
            {k: self.counts[k] + other.counts[k] for k in self.counts},
        )

    def means(self) -> dict[str, np.ndarray]:
        """Mean of each metric per configuration (NaN where nobody counted)."""
        return {
            k: self.sums[k] / self.counts[k] if self.counts[k] else np.full_like(v, np.nan)
            for k, v in self.sums.items()
        }

    def for_config(self, index: int) -> MetricSums:
        """The ``MetricSums`` of one configuration."""
        return MetricSums({k: float(v[index]) for k, v in self.sums.items()}, dict(self.counts))

    def to_arrays(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Sums (configs x keys) and counts (keys), e.g. for a federated message."""
        sums = np.stack([self.sums[k] for k in keys], axis=1)
        return sums, np.array([self.counts[k] for k in keys], dtype=np.float64)

    @classmethod
    def from_arrays(cls, keys: list[str], sums: np.ndarray, counts: np.ndarray) -> ConfigSums:
        return cls(
            {k: np.asarray(sums[:, j], dtype=np.float64) for j, k in enumerate(keys)},
            {k: float(c) for k, c in zip(keys, counts, strict=True)},
        )


def metric_keys(ks: Iterable[int], buckets: bool = True) -> list[str]:
    """All metric names for the cut-offs ``ks``, overall and per popularity bucket."""
    base = [f"{m}@{k}" for k in sorted(ks) for m in METRICS]
    if not buckets:
        return base
    return base + [f"{b}/{name}" for b in BUCKETS for name in base]


# ------------------------------------------------------------------------- from ranks to values
def config_row_values(
    ranks: np.ndarray, rel_rows: np.ndarray, num_rows: int, ks: Iterable[int]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per configuration and row, Recall/NDCG/HitRate@K (each c x ``num_rows``) from the ranks
    (c x R) of the relevant pairs in rows ``rel_rows``; and a bool per row: has it any pair?"""
    ks = sorted(ks)
    ranks = np.atleast_2d(np.asarray(ranks, dtype=np.int64))
    rel_rows = np.asarray(rel_rows, dtype=np.int64)
    c = ranks.shape[0]
    values = {f"{m}@{k}": np.zeros((c, num_rows)) for k in ks for m in METRICS}
    has = np.zeros(num_rows, dtype=bool)
    if rel_rows.size == 0:
        return values, has
    order = np.argsort(rel_rows, kind="stable")
    rows, ranks = rel_rows[order], ranks[:, order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    present = rows[starts]
    has[present] = True
    n_rel = np.diff(np.r_[starts, rows.size]).astype(np.float64)
    best = np.minimum.reduceat(ranks, starts, axis=1)
    discount = 1.0 / np.log2(ranks + 2.0)
    ideal = np.cumsum(1.0 / np.log2(np.arange(max(ks), dtype=np.float64) + 2.0))
    for k in ks:
        hit = ranks < k
        hits = np.add.reduceat(hit.astype(np.float64), starts, axis=1)
        dcg = np.add.reduceat(hit * discount, starts, axis=1)
        values[f"recall@{k}"][:, present] = hits / n_rel
        values[f"ndcg@{k}"][:, present] = dcg / ideal[np.minimum(n_rel, k).astype(np.int64) - 1]
        values[f"hit@{k}"][:, present] = best < k
    return values, has


def config_sums_from_ranks(
    ranks: np.ndarray,
    rel_rows: np.ndarray,
    rel_items: np.ndarray,
    num_rows: int,
    ks: Iterable[int],
    item_is_head: np.ndarray | None = None,
) -> ConfigSums:
    """Metric sums per configuration from the ranks (c x R) of the relevant pairs.

    With ``item_is_head`` (bool per item) the head and tail buckets are reported too, each over
    the rows with a relevant item there.
    """
    rel_rows = np.asarray(rel_rows, dtype=np.int64)
    parts: list[tuple[str, np.ndarray | None]] = [("", None)]
    if item_is_head is not None:
        is_head = np.asarray(item_is_head, dtype=bool)[np.asarray(rel_items, dtype=np.int64)]
        parts += [(f"{BUCKETS[0]}/", is_head), (f"{BUCKETS[1]}/", ~is_head)]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, float] = {}
    for prefix, keep in parts:
        part_ranks = ranks if keep is None else ranks[:, keep]
        part_rows = rel_rows if keep is None else rel_rows[keep]
        values, has = config_row_values(part_ranks, part_rows, num_rows, ks)
        count = float(has.sum())
        for key, value in values.items():
            sums[prefix + key] = value[:, has].sum(axis=1)
            counts[prefix + key] = count
    return ConfigSums(sums, counts)


# ------------------------------------------------------------------------------ ranking kernel
class ItemOrder:
    """Where each item sits in a score array: items grouped in segments (e.g. item groups), in
    increasing item index inside a segment. Positions are the first axis of the scores."""

    def __init__(self, segment_of_item: np.ndarray, num_segments: int | None = None) -> None:
        segment_of_item = np.asarray(segment_of_item, dtype=np.int64)
        if num_segments is None:
            num_segments = int(segment_of_item.max()) + 1 if segment_of_item.size else 0
        self.order = np.argsort(segment_of_item, kind="stable")  # position -> item
        self.position = np.empty_like(self.order)  # item -> position
        self.position[self.order] = np.arange(self.order.size)
        sizes = np.bincount(segment_of_item, minlength=num_segments)
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.segment_at = segment_of_item[self.order]  # segment of each position

    @classmethod
    def identity(cls, n_items: int) -> ItemOrder:
        """Position = item index (one segment)."""
        return cls(np.zeros(n_items, dtype=np.int64), 1)

    @property
    def n_items(self) -> int:
        return int(self.order.size)

    def cuts(self, items: np.ndarray) -> np.ndarray:
        """S x r: first position of each segment holding an item index >= ``items[r]``."""
        return np.stack(
            [
                lo + np.searchsorted(self.order[lo:hi], items)
                for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True)
            ]
        )


class RelevantRanks:
    """Ranks of relevant (row, item) pairs in scores laid out by an ``ItemOrder``.

    Scores are ``n x u x c`` (item positions x rows x configurations); excluded items score
    ``-inf``. The rounds and tie-breaking masks depend only on the pairs, so one instance ranks
    any number of score chunks of the same rows. Ranks of c configurations are counted together;
    with c a multiple of 8 the bool counts are packed eight configurations to an int64.
    """

    def __init__(self, order: ItemOrder, rows: np.ndarray, items: np.ndarray, num_rows: int):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.rounds = [
            _Round(order, self.rows, self.items, pairs, num_rows) for pairs in _rounds(self.rows)
        ]

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """c x R ranks (0 = first) of the pairs."""
        ranks = np.zeros((scores.shape[2], self.rows.size), dtype=np.int64)
        for rnd in self.rounds:
            ranks[:, rnd.pairs] = rnd.ranks(scores)
        return ranks


LANES = 8  # bool counts are summed eight configurations at a time, as bytes of an int64
_RUN = 255  # at most 255 rows per packed sum, so no byte lane overflows


class _Round:
    """Relevant pairs with distinct rows, and how to break ties for each item position.

    A relevant item's rank counts items scored higher, plus equally scored items with a smaller
    item index. Position p comes before row r's item when ``p < cut[segment(p), r]``. Runs of
    positions that come before every row's item are counted with ``>=``, runs after every row's
    item with ``>``, and only the mixed runs need a per-row mask.
    """

    def __init__(
        self, order: ItemOrder, rows: np.ndarray, items: np.ndarray, pairs: np.ndarray, u: int
    ) -> None:
        self.pairs = pairs
        self.rows = rows[pairs]
        self.items = items[pairs]
        self.own_positions = order.position[self.items]
        self.all_rows = self.rows.size == u and bool((self.rows == np.arange(u)).all())
        n = order.n_items
        cut = order.cuts(self.items)[order.segment_at]  # n x r
        before_all = np.arange(n) < cut.min(axis=1)
        after_all = np.arange(n) >= cut.max(axis=1)
        mode = np.where(before_all, 0, np.where(after_all, 1, 2))
        self.runs: list[tuple[int, int, int, np.ndarray | None]] = []
        edges = np.flatnonzero(np.diff(mode)) + 1
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [mode.size]])
        for a, b in zip(starts, stops, strict=True):
            for lo in range(int(a), int(b), _RUN):
                hi = min(int(b), lo + _RUN)
                kind = int(mode[lo])
                before = None
                if kind == 2:
                    before = (np.arange(lo, hi)[:, None] < cut[lo:hi])[:, :, None]
                self.runs.append((lo, hi, kind, before))

    def ranks(self, scores: np.ndarray) -> np.ndarray:
        """c x r ranks of this round's pairs."""
        own = scores[self.own_positions, self.rows]  # r x c
        rows = None if self.all_rows else self.rows
        counts = np.zeros(own.shape, dtype=np.int64)
        buf = np.empty((_RUN, *own.shape), dtype=bool)
        for lo, hi, kind, before in self.runs:
            part = scores[lo:hi] if rows is None else scores[lo:hi, rows]
            out = buf[: hi - lo]
            if kind == 0:
                np.greater_equal(part, own, out=out)
            else:
                np.greater(part, own, out=out)
            counts += _count(out)
            if before is not None:
                np.equal(part, own, out=out)
                out &= before
                counts += _count(out)
        counts[np.isnan(own)] = scores.shape[0]  # a NaN score ranks last
        return counts.T


def _count(flags: np.ndarray) -> np.ndarray:
    """Sum of a (k <= 255) x r x c bool array over its first axis (packed when c % 8 == 0)."""
    if flags.shape[-1] % LANES:
        return flags.sum(axis=0, dtype=np.int64)
    words = flags.view(np.int64).sum(axis=0)
    return words.view(np.uint8).reshape(flags.shape[1:])


def _rounds(rows: np.ndarray) -> list[np.ndarray]:
    """Pair indexes in rounds where no row repeats (round j: j-th pair of each row), by row."""
    if rows.size == 0:
        return []
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    group_start = np.flatnonzero(first)
    occurrence = np.arange(rows.size) - group_start[np.cumsum(first) - 1]
    # ``order`` lists pairs by row, so each round's pairs come in increasing row order.
    return [order[occurrence == j] for j in range(int(occurrence.max()) + 1)]


# ------------------------------------------------------------------ one configuration (torch)
def ranks_of_relevant(
    scores: torch.Tensor, rel_rows: torch.Tensor, rel_items: torch.Tensor
) -> torch.Tensor:
    """Rank (0 = first) of each relevant (row, item) pair within its row of ``scores``."""
    if rel_rows.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    by_item = np.ascontiguousarray(scores.detach().numpy().T)[:, :, None]  # n x rows x 1
    kernel = RelevantRanks(
        ItemOrder.identity(scores.shape[1]), rel_rows.numpy(), rel_items.numpy(), scores.shape[0]
    )
    return torch.from_numpy(kernel(by_item)[0])


def row_values_from_ranks(
    ranks: torch.Tensor, rel_rows: torch.Tensor, num_rows: int, ks: Iterable[int]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-row Recall/NDCG/HitRate@K, and a bool per row: has it any relevant pair?"""
    values, has = config_row_values(ranks.numpy()[None], rel_rows.numpy(), num_rows, ks)
    return {k: torch.from_numpy(v[0]) for k, v in values.items()}, torch.from_numpy(has)


def ranking_sums(
    scores: torch.Tensor,
    rel_rows: torch.Tensor,
    rel_items: torch.Tensor,
    ks: Iterable[int],
    item_is_head: torch.Tensor | None = None,
) -> MetricSums:
    """Metric sums for a batch of score rows (excluded items already at ``-inf``).

    ``rel_rows``/``rel_items`` list the relevant (row, item) pairs. With ``item_is_head`` (bool per
    item) the head and tail buckets are reported too, each over the rows with a relevant item there.
    """
    ranks = ranks_of_relevant(scores, rel_rows, rel_items)
    return sums_from_ranks(ranks, rel_rows, rel_items, scores.shape[0], ks, item_is_head)


def sums_from_ranks(
    ranks: torch.Tensor,
    rel_rows: torch.Tensor,
    rel_items: torch.Tensor,
    num_rows: int,
    ks: Iterable[int],
    item_is_head: torch.Tensor | None = None,
) -> MetricSums:
    """``ranking_sums`` from the relevant pairs' ranks (``ranks_of_relevant``), for callers that
    also need the ranks (per-row values, ``row_values_from_ranks``)."""
    heads = None if item_is_head is None else item_is_head.numpy()
    sums = config_sums_from_ranks(
        ranks.numpy()[None], rel_rows.numpy(), rel_items.numpy(), num_rows, ks, heads
    )
    return sums.for_config(0)


def head_items(popularity: np.ndarray, head_share: float) -> np.ndarray:
    """Bool per item: the most popular items that together hold ``head_share`` of interactions.

    An item is in the head when the share held by the items more popular than it (ties broken by
    item index) is below ``head_share``.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    order = np.lexsort((np.arange(popularity.size), -popularity))
    total = popularity.sum()
    before = np.concatenate([[0.0], np.cumsum(popularity[order])[:-1]]) / max(total, 1.0)
    is_head = np.zeros(popularity.size, dtype=bool)
    is_head[order] = (before < head_share) & (popularity[order] > 0)
    return is_head
