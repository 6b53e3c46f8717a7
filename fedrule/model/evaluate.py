"""Full-ranking evaluation of any scorer over the users of a split (batched, vectorised)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.data.split import SplitData
from fedrule.metrics import MetricSums, ranks_of_relevant, row_values_from_ranks, sums_from_ranks

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
"""``score_fn(users) -> scores`` of every item for each user (rows x n_items)."""


def csr_pairs(
    indptr: np.ndarray, items: np.ndarray, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row - start, item) pairs of the CSR rows ``start..stop-1``."""
    lo, hi = int(indptr[start]), int(indptr[stop])
    counts = np.diff(indptr[start : stop + 1])
    rows = np.repeat(np.arange(stop - start), counts)
    return torch.from_numpy(rows), torch.from_numpy(np.asarray(items[lo:hi], dtype=np.int64))


@dataclass(frozen=True)
class _Batch:
    """Users ``start..stop-1`` scored, their excluded items at ``-inf``, and their relevant
    (row, item) pairs (rows counted from ``start``)."""

    start: int
    stop: int
    scores: torch.Tensor
    rel_rows: torch.Tensor
    rel_items: torch.Tensor


def _batches(
    score_fn: ScoreFn, split: SplitData, target: str, batch_users: int
) -> Iterator[_Batch]:
    """The scored batches of users with a ``target`` item ('valid' or 'test'). Excluded from the
    ranking: the user's training items, and at test time its validation items."""
    relevant = getattr(split, target)
    excluded = [split.train] + ([split.valid] if target == "test" else [])
    n_users = split.n_users
    with torch.no_grad():
        for start in range(0, n_users, batch_users):
            stop = min(start + batch_users, n_users)
            rel_rows, rel_items = csr_pairs(relevant.indptr, relevant.items, start, stop)
            if rel_rows.numel() == 0:
                continue
            scores = score_fn(torch.arange(start, stop)).clone()
            for part in excluded:
                rows, items = csr_pairs(part.indptr, part.items, start, stop)
                scores[rows, items] = float("-inf")
            yield _Batch(start, stop, scores, rel_rows, rel_items)


def evaluate_ranking(
    score_fn: ScoreFn,
    split: SplitData,
    *,
    target: str,
    ks: Iterable[int],
    item_is_head: torch.Tensor | None,
    batch_users: int = 1024,
) -> MetricSums:
    """Metric sums of ``score_fn`` on ``split.<target>`` ('valid' or 'test').

    Excluded from the ranking: the user's training items, and at test time its validation items.
    """
    sums, _ = evaluate_ranking_users(
        score_fn, split, target=target, ks=ks, item_is_head=item_is_head, batch_users=batch_users
    )
    return sums


def evaluate_ranking_users(
    score_fn: ScoreFn,
    split: SplitData,
    *,
    target: str,
    ks: Iterable[int],
    item_is_head: torch.Tensor | None,
    key: str | None = None,
    batch_users: int = 1024,
) -> tuple[MetricSums, np.ndarray | None]:
    """``evaluate_ranking``'s sums and, with ``key`` (a plain cut-off metric such as
    ``ndcg@20``), that metric of every user from the same ranks: NaN for a user with nothing to
    rank in ``split.<target>``, so its mean over the other users is the sums' mean."""
    ks = list(ks)
    total = MetricSums()
    out = None if key is None else np.full(split.n_users, np.nan)
    for b in _batches(score_fn, split, target, batch_users):
        ranks = ranks_of_relevant(b.scores, b.rel_rows, b.rel_items)
        num_rows = b.stop - b.start
        total = total + sums_from_ranks(ranks, b.rel_rows, b.rel_items, num_rows, ks, item_is_head)
        if out is not None:
            k = int(key.partition("@")[2])
            values, has = row_values_from_ranks(ranks, b.rel_rows, num_rows, [k])
            out[b.start : b.stop] = np.where(has.numpy(), values[key].numpy(), np.nan)
    return total, out
