"""Label configurations by really evaluating them: metric sums of many configurations at once.

For a batch of users, the per-block partial scores ``P[b, i, u] = <V[i, block b], x_u[block b]>``
are computed once; the score of item ``i`` under configuration ``c`` is then
``sum_b w[c, g(i), b] * P[b, i, u]``. Items are sorted by group, so for each group this is one
plain matrix product ``P_g (n_g*u x B) @ W_g^T (B x c)``. Ranks follow ``fedrule.metrics``: excluded
items score ``-inf``, items without a kept block score ``UNSCORED``, and a relevant item's rank is
the number of items scored strictly higher plus the equally scored ones with a smaller index.

The same function serves the server (many users) and a federated device (its own single user).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.metrics import METRICS, MetricSums, metric_keys
from fedrule.model.elastic import ElasticLayout
from fedrule.model.mf import UNSCORED

Pairs = tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]
"""(rows, items): row indexes into the user vectors, item indexes into the table."""

SCORE_BUDGET = 2**28  # bytes of one chunk of scores (configs x items x users, float32)


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


def label_configs(
    user_vecs: torch.Tensor,
    item_table: torch.Tensor,
    layout: ElasticLayout,
    configs: np.ndarray,
    excluded: Pairs,
    relevant: Pairs,
    ks: Iterable[int],
    *,
    item_is_head: torch.Tensor | np.ndarray | None = None,
    batch_users: int = 256,
    score_budget: int = SCORE_BUDGET,
) -> ConfigSums:
    """Metric sums of every configuration in ``configs`` (C x G x B) over the given users.

    ``excluded``: (row, item) pairs ranked out (the users' training items, at test time also
    validation items). ``relevant``: (row, item) pairs to rank (validation items). Per
    configuration, equal to ``evaluate_ranking`` with ``configured_scores`` (up to float rounding
    of near-equal scores). ``score_budget`` bounds the bytes of one chunk of scores.
    """
    ks = sorted(ks)
    configs = np.asarray(configs, dtype=bool)
    if configs.ndim == 2:
        configs = configs[None]
    ex_rows, ex_items = (np.asarray(a, dtype=np.int64).ravel() for a in excluded)
    rel_rows, rel_items = (np.asarray(a, dtype=np.int64).ravel() for a in relevant)
    heads = None if item_is_head is None else np.asarray(item_is_head, dtype=bool)
    plan = _ItemPlan(layout, item_table)
    users = user_vecs.detach().to(torch.float32)
    # a chunk holds at least 8 configurations: fewer users per batch on a big catalogue
    batch_users = max(1, min(batch_users, score_budget // (4 * max(layout.n_items, 1) * _LANES)))
    keys = metric_keys(ks, buckets=heads is not None)
    total = ConfigSums({k: np.zeros(configs.shape[0]) for k in keys}, dict.fromkeys(keys, 0.0))
    # Users that have a relevant item, sorted by it: a batch then spans a narrow range of relevant
    # items, which keeps the tie-breaking region (see ``_Round``) small.
    first = np.unique(rel_rows, return_index=True)
    evaluated = first[0][np.argsort(rel_items[first[1]], kind="stable")]
    batch_of = np.full(users.shape[0], -1, dtype=np.int64)
    batch_of[evaluated] = np.arange(evaluated.size) // batch_users
    local = np.zeros(users.shape[0], dtype=np.int64)
    local[evaluated] = np.arange(evaluated.size) % batch_users
    ex_parts = _split_by(batch_of[ex_rows])
    rel_parts = _split_by(batch_of[rel_rows])
    with torch.no_grad():
        for index, start in enumerate(range(0, evaluated.size, batch_users)):
            batch = evaluated[start : start + batch_users]
            ex = ex_parts.get(index, np.zeros(0, dtype=np.int64))
            rel = rel_parts[index]
            part = _UserBatch(
                plan,
                users[torch.from_numpy(batch)],
                (local[ex_rows[ex]], ex_items[ex]),
                (local[rel_rows[rel]], rel_items[rel]),
            )
            total = total + part.sums(configs, ks, heads, score_budget)
    return total


class _ItemPlan:
    """Items sorted by group (group-contiguous, item order kept inside a group)."""

    def __init__(self, layout: ElasticLayout, item_table: torch.Tensor) -> None:
        self.layout = layout
        self.order = np.argsort(layout.group_of_item, kind="stable")  # position -> item
        self.position = np.empty_like(self.order)  # item -> position
        self.position[self.order] = np.arange(self.order.size)
        self.bounds = np.concatenate([[0], np.cumsum(layout.group_sizes)]).astype(np.int64)
        self.group_at = layout.group_of_item[self.order]  # group of each position
        n, b = layout.n_items, layout.num_blocks
        table = item_table.detach().to(torch.float32)[torch.from_numpy(self.order)]
        self.blocks = table.reshape(n, b, layout.block_dim).transpose(0, 1)  # B x n x w

    def cuts(self, items: np.ndarray) -> np.ndarray:
        """G x r: first position of each group holding an item index >= ``items[r]``."""
        return np.stack(
            [
                lo + np.searchsorted(self.order[lo:hi], items)
                for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True)
            ]
        )


class _UserBatch:
    """One batch of users: per-block partial scores and the pairs to mask and to rank."""

    def __init__(
        self,
        plan: _ItemPlan,
        users: torch.Tensor,
        excluded: tuple[np.ndarray, np.ndarray],
        relevant: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self.plan = plan
        layout = plan.layout
        self.u = u = users.shape[0]
        user_blocks = users.reshape(u, layout.num_blocks, -1)
        # partial[i, u, b]: item at position i against user u on block b.
        partial = torch.bmm(plan.blocks, user_blocks.permute(1, 2, 0))  # B x n x u
        self.partial = partial.permute(1, 2, 0).contiguous()
        ex_rows, ex_items = excluded
        self.excluded_flat = plan.position[ex_items] * u + ex_rows
        self.rel_rows, self.rel_items = relevant
        self.rounds = [
            _Round(plan, self.rel_rows, self.rel_items, pairs, u)
            for pairs in _rounds(self.rel_rows)
        ]

    def sums(
        self,
        configs: np.ndarray,
        ks: list[int],
        heads: np.ndarray | None,
        score_budget: int,
    ) -> ConfigSums:
        n = self.plan.layout.n_items
        chunk = max(_LANES, score_budget // (4 * n * self.u) // _LANES * _LANES)
        ranks = np.empty((configs.shape[0], self.rel_rows.size), dtype=np.int64)
        for lo in range(0, configs.shape[0], chunk):
            part = configs[lo : lo + chunk]
            scores = self._scores(part)
            for rnd in self.rounds:
                ranks[lo : lo + len(part), rnd.pairs] = rnd.ranks(scores)[: len(part)]
        return _sums_from_rank_matrix(ranks, self.rel_rows, self.rel_items, ks, heads)

    def _scores(self, configs: np.ndarray) -> np.ndarray:
        """Scores (n x u x c, c padded to a multiple of 8); excluded items at -inf."""
        plan, layout = self.plan, self.plan.layout
        pad = -len(configs) % _LANES
        if pad:
            configs = np.concatenate([configs, np.repeat(configs[-1:], pad, axis=0)])
        weights = layout.group_weights(configs)  # c x G x B
        c = weights.shape[0]
        scores = torch.empty(layout.n_items, self.u, c)
        flat_partial = self.partial.view(-1, layout.num_blocks)
        empty = ~(weights > 0).any(dim=2)  # c x G: groups without a kept block
        for g, (lo, hi) in enumerate(zip(plan.bounds[:-1], plan.bounds[1:], strict=True)):
            out = scores[lo:hi].view(-1, c)
            torch.mm(flat_partial[lo * self.u : hi * self.u], weights[:, g].T, out=out)
            if bool(empty[:, g].any()):
                scores[lo:hi, :, empty[:, g]] = UNSCORED
        out_np = scores.numpy()
        out_np.reshape(-1, c)[self.excluded_flat] = -np.inf
        return out_np


_LANES = 8  # bool counts are summed eight configurations at a time, as bytes of an int64
_RUN = 255  # at most 255 rows per packed sum, so no byte lane overflows


class _Round:
    """Relevant pairs with distinct rows, and how to break ties for each item position.

    A relevant item's rank counts items scored higher, plus equally scored items with a smaller
    item index. Position p (items are group-sorted) comes before row r's item when
    ``p < cut[group(p), r]``. Runs of positions that come before every row's item are counted with
    ``>=``, runs after every row's item with ``>``, and only the mixed runs need a per-row mask.
    """

    def __init__(
        self, plan: _ItemPlan, rows: np.ndarray, items: np.ndarray, pairs: np.ndarray, u: int
    ) -> None:
        self.pairs = pairs
        self.rows = rows[pairs]
        self.items = items[pairs]
        self.own_positions = plan.position[self.items]
        self.all_rows = self.rows.size == u and bool((self.rows == np.arange(u)).all())
        cut = plan.cuts(self.items)[plan.group_at]  # n x r
        before_all = np.arange(plan.layout.n_items) < cut.min(axis=1)
        after_all = np.arange(plan.layout.n_items) >= cut.max(axis=1)
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


def _split_by(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Indexes of ``keys`` grouped by key value (negative keys dropped)."""
    if keys.size == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    stops = np.append(starts[1:], order.size)
    return {int(v): order[a:b] for v, a, b in zip(values, starts, stops, strict=True) if v >= 0}


def _count(flags: np.ndarray) -> np.ndarray:
    """Sum of a (k <= 255) x r x c bool array over its first axis, c a multiple of 8."""
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


def _sums_from_rank_matrix(
    ranks: np.ndarray,
    rel_rows: np.ndarray,
    rel_items: np.ndarray,
    ks: list[int],
    heads: np.ndarray | None,
) -> ConfigSums:
    """``fedrule.metrics.ranking_sums`` for each row of ``ranks`` (c x R), vectorised."""
    parts: list[tuple[str, np.ndarray | None]] = [("", None)]
    if heads is not None:
        is_head = heads[rel_items]
        parts += [("head/", is_head), ("tail/", ~is_head)]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, float] = {}
    for prefix, keep in parts:
        part_ranks = ranks if keep is None else ranks[:, keep]
        part_rows = rel_rows if keep is None else rel_rows[keep]
        part_sums, count = _rank_sums(part_ranks, part_rows, ks)
        for key, values in part_sums.items():
            sums[prefix + key] = values
            counts[prefix + key] = count
    return ConfigSums(sums, counts)


def _rank_sums(
    ranks: np.ndarray, rel_rows: np.ndarray, ks: list[int]
) -> tuple[dict[str, np.ndarray], float]:
    """Like ``fedrule.metrics.sums_from_ranks`` for c rows of ranks at once.

    Every row with a relevant pair counts; per pair, recall adds ``hit / |relevant of its row|``
    and NDCG ``hit * discount / ideal DCG of its row``; HitRate counts rows whose best rank hits.
    """
    order = np.argsort(rel_rows, kind="stable")
    rows, ranks = rel_rows[order], ranks[:, order]
    c = ranks.shape[0]
    if rows.size == 0:
        empty = {f"{m}@{k}": np.zeros(c) for k in ks for m in METRICS}
        return empty, 0.0
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    n_rel = np.diff(np.r_[starts, rows.size]).astype(np.float64)
    per_pair = np.repeat(n_rel, n_rel.astype(np.int64))
    best = np.minimum.reduceat(ranks, starts, axis=1)
    discount = 1.0 / np.log2(ranks + 2.0)
    ideal = np.cumsum(1.0 / np.log2(np.arange(max(ks), dtype=np.float64) + 2.0))
    sums: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks < k
        idcg = ideal[np.minimum(per_pair, k).astype(np.int64) - 1]
        sums[f"recall@{k}"] = (hit / per_pair).sum(axis=1)
        sums[f"ndcg@{k}"] = (hit * discount / idcg).sum(axis=1)
        sums[f"hit@{k}"] = (best < k).sum(axis=1).astype(np.float64)
    ordered = {f"{m}@{k}": sums[f"{m}@{k}"] for k in ks for m in METRICS}
    return ordered, float(starts.size)
