"""Label configurations by really evaluating them: metric sums of many configurations at once.

For a batch of users, the per-block partial scores ``P[b, i, u] = <V[i, block b], x_u[block b]>``
are computed once; the score of item ``i`` under configuration ``c`` is then
``sum_b w[c, g(i), b] * P[b, i, u]``. Items are sorted by group, so for each group this is one
plain matrix product ``P_g (n_g*u x B) @ W_g^T (B x c)``. Excluded items score ``-inf``, items
without a kept block score ``UNSCORED``; ranks and metric sums come from the kernel in
``fedrule.metrics`` (``RelevantRanks`` over the group order, ``config_sums_from_ranks``).

The same function serves the server (many users) and a federated device (its own single user).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from fedrule.metrics import (
    LANES,
    ConfigSums,
    ItemOrder,
    RelevantRanks,
    config_sums_from_ranks,
    metric_keys,
)
from fedrule.model.elastic import ElasticLayout
from fedrule.model.mf import UNSCORED

Pairs = tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]
"""(rows, items): row indexes into the user vectors, item indexes into the table."""

SCORE_BUDGET = 2**28  # bytes of one chunk of scores (configs x items x users, float32)


def objective_labels(sums: ConfigSums, metric: str, tail_weight: float = 0.0) -> np.ndarray:
    """Labels of the configurations: the mean of ``metric``, or with ``tail_weight`` w > 0
    ``(1 - w) * metric + w * tail/metric`` (the sums must then hold the head/tail buckets; a
    tail without any relevant item counts as 0)."""
    means = sums.means()
    if tail_weight == 0:
        return means[metric]
    tail = means.get(f"tail/{metric}")
    if tail is None:
        raise ValueError(f"labels lack tail/{metric}: label with item_is_head")
    return (1.0 - tail_weight) * means[metric] + tail_weight * np.nan_to_num(tail)


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
    batch_users = max(1, min(batch_users, score_budget // (4 * max(layout.n_items, 1) * LANES)))
    keys = metric_keys(ks, buckets=heads is not None)
    total = ConfigSums({k: np.zeros(configs.shape[0]) for k in keys}, dict.fromkeys(keys, 0.0))
    # Users that have a relevant item, sorted by it: a batch then spans a narrow range of relevant
    # items, which keeps the tie-breaking region (see ``fedrule.metrics.RelevantRanks``) small.
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
    """Items sorted by group (group-contiguous, item order kept inside a group), and their
    embedding blocks in that order."""

    def __init__(self, layout: ElasticLayout, item_table: torch.Tensor) -> None:
        self.layout = layout
        self.items = ItemOrder(layout.group_of_item, layout.num_groups)
        self.bounds = self.items.bounds
        n, b = layout.n_items, layout.num_blocks
        table = item_table.detach().to(torch.float32)[torch.from_numpy(self.items.order)]
        self.blocks = table.reshape(n, b, layout.block_dim).transpose(0, 1)  # B x n x w


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
        self.excluded_flat = plan.items.position[ex_items] * u + ex_rows
        self.rel_rows, self.rel_items = relevant
        self.ranker = RelevantRanks(plan.items, self.rel_rows, self.rel_items, u)

    def sums(
        self,
        configs: np.ndarray,
        ks: list[int],
        heads: np.ndarray | None,
        score_budget: int,
    ) -> ConfigSums:
        n = self.plan.layout.n_items
        chunk = max(LANES, score_budget // (4 * n * self.u) // LANES * LANES)
        ranks = np.empty((configs.shape[0], self.rel_rows.size), dtype=np.int64)
        for lo in range(0, configs.shape[0], chunk):
            part = configs[lo : lo + chunk]
            ranks[lo : lo + len(part)] = self.ranker(self._scores(part))[: len(part)]
        return config_sums_from_ranks(ranks, self.rel_rows, self.rel_items, self.u, ks, heads)

    def _scores(self, configs: np.ndarray) -> np.ndarray:
        """Scores (n x u x c, c padded to a multiple of 8); excluded items at -inf."""
        plan, layout = self.plan, self.plan.layout
        pad = -len(configs) % LANES
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


def _split_by(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Indexes of ``keys`` grouped by key value (negative keys dropped)."""
    if keys.size == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    stops = np.append(starts[1:], order.size)
    return {int(v): order[a:b] for v, a, b in zip(values, starts, stops, strict=True) if v >= 0}
