"""Full-ranking metrics as mergeable sums.

Every metric is a per-user value averaged over the users that have at least one relevant item
(overall, or in a popularity bucket). It is kept as a weighted *sum* and a *count*, so results
from devices, batches or workers add up with ``+`` and the mean is taken once at the end.

Ranking protocol: all items are ranked except the ones a caller masks out (score ``-inf``: the
user's training items, and validation items at test time). The rank of a relevant item is the
number of items scored strictly higher plus the number of equally scored items with a smaller
index (ties are broken by item index, deterministically). Binary relevance; NDCG uses a log2
discount and an ideal DCG over ``min(|relevant|, K)``; Recall@K = hits / |relevant|.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

BUCKETS = ("head", "tail")
METRICS = ("recall", "ndcg", "hit")


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


def metric_keys(ks: Iterable[int], buckets: bool = True) -> list[str]:
    """All metric names for the cut-offs ``ks``, overall and per popularity bucket."""
    base = [f"{m}@{k}" for k in sorted(ks) for m in METRICS]
    if not buckets:
        return base
    return base + [f"{b}/{name}" for b in BUCKETS for name in base]


def ranks_of_relevant(
    scores: torch.Tensor, rel_rows: torch.Tensor, rel_items: torch.Tensor
) -> torch.Tensor:
    """Rank (0 = first) of each relevant (row, item) pair within its row of ``scores``."""
    if rel_rows.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    rows = scores.index_select(0, rel_rows)
    own = rows.gather(1, rel_items[:, None])
    higher = (rows > own).sum(1)
    tied = rows == own
    before = torch.arange(scores.shape[1])[None, :] < rel_items[:, None]
    ranks = higher + (tied & before).sum(1)
    return torch.where(own[:, 0].isnan(), scores.shape[1], ranks)  # a NaN score ranks last


def row_values_from_ranks(
    ranks: torch.Tensor, rel_rows: torch.Tensor, num_rows: int, ks: Iterable[int]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-row Recall/NDCG/HitRate@K, and a bool per row: has it any relevant pair?"""
    ks = sorted(ks)
    n_rel = torch.zeros(num_rows, dtype=torch.float64).index_add_(
        0, rel_rows, torch.ones_like(rel_rows, dtype=torch.float64)
    )
    discount = 1.0 / torch.log2(ranks.to(torch.float64) + 2.0)
    ideal = torch.cumsum(1.0 / torch.log2(torch.arange(max(ks), dtype=torch.float64) + 2.0), 0)
    values: dict[str, torch.Tensor] = {}
    for k in ks:
        hit_pair = (ranks < k).to(torch.float64)
        hits = torch.zeros(num_rows, dtype=torch.float64).index_add_(0, rel_rows, hit_pair)
        dcg = torch.zeros(num_rows, dtype=torch.float64).index_add_(
            0, rel_rows, hit_pair * discount
        )
        idcg = ideal[(n_rel.clamp(min=1, max=k) - 1).long()]
        values[f"recall@{k}"] = hits / n_rel.clamp(min=1)
        values[f"ndcg@{k}"] = dcg / idcg
        values[f"hit@{k}"] = (hits > 0).to(torch.float64)
    ordered = {f"{m}@{k}": values[f"{m}@{k}"] for k in ks for m in METRICS}
    return ordered, n_rel > 0


def sums_from_ranks(
    ranks: torch.Tensor,
    rel_rows: torch.Tensor,
    num_rows: int,
    ks: Iterable[int],
    prefix: str = "",
) -> MetricSums:
    """Recall/NDCG/HitRate@K sums over the rows that have at least one relevant pair."""
    values, counted = row_values_from_ranks(ranks, rel_rows, num_rows, ks)
    count = float(counted.sum())
    sums = {f"{prefix}{key}": float(v[counted].sum()) for key, v in values.items()}
    return MetricSums(sums, dict.fromkeys(sums, count))


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
    ks = list(ks)
    num_rows = scores.shape[0]
    ranks = ranks_of_relevant(scores, rel_rows, rel_items)
    out = sums_from_ranks(ranks, rel_rows, num_rows, ks)
    if item_is_head is not None:
        is_head = item_is_head[rel_items]
        for name, keep in (("head", is_head), ("tail", ~is_head)):
            out = out + sums_from_ranks(ranks[keep], rel_rows[keep], num_rows, ks, f"{name}/")
    return out


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
