"""Block coverage: how much training each (item group, block) of the elastic table received.

After every round the server adds, per group and block, the example weight of the devices whose
update reached that block of the group's items (``sum_w`` of the round's row/block aggregate,
which the server receives anyway), over every elastic table it trains. In full mode every
device updates every block of the rows it touches; in budgeted mode a block held only by
large-budget devices is trained by them alone, and this shows by how much less.

Not kept under central DP: the per-block weights are not noised, so publishing their sums
would release something the privacy accounting does not cover.
"""

from __future__ import annotations

import itertools

import numpy as np

from fedrule.model.elastic import ElasticLayout


class BlockCoverage:
    """Sums of example weight per (group, block), over rounds."""

    def __init__(self, layout: ElasticLayout, weight: np.ndarray | None = None) -> None:
        self.layout = layout
        shape = (layout.num_groups, layout.num_blocks)
        self.weight = np.zeros(shape) if weight is None else np.array(weight, dtype=np.float64)

    def add(self, sum_w: np.ndarray, offsets: np.ndarray) -> None:
        """One round's per-row, per-block weights (the stacked tables' rows; each table of
        ``offsets`` has the layout's items)."""
        for start, end in itertools.pairwise(offsets):
            np.add.at(self.weight, self.layout.group_of_item, sum_w[start:end])

    def rows(self) -> list[dict]:
        """One row per (group, block): its weight and its share of the group's best-trained
        block (1: as trained as any block of the group; 0: never trained)."""
        best = self.weight.max(axis=1, keepdims=True)
        share = np.divide(self.weight, best, out=np.zeros_like(self.weight), where=best > 0)
        groups, blocks = self.weight.shape
        return [
            {
                "group": g,
                "block": b,
                "weight": float(self.weight[g, b]),
                "share": float(share[g, b]),
            }
            for g in range(groups)
            for b in range(blocks)
        ]

    def summary(self) -> str:
        """One line: how unevenly the blocks of a group are trained."""
        best = self.weight.max(axis=1, keepdims=True)
        trained = best[:, 0] > 0
        if not trained.any():
            return "block coverage: no block was trained"
        share = (self.weight[trained] / best[trained]).ravel()
        return (
            f"block coverage: a block gets {np.median(share):.0%} (median) and at least "
            f"{share.min():.0%} of its group's most-trained block's example weight"
        )
