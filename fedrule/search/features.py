"""Features of a configuration for the performance estimator.

Per configuration (all linear in the mask, all in [0, 1] or close):

* the flattened mask (G x B values);
* per group, the kept-block fraction times the group's popularity share, scaled by G (G values;
  with equal shares this is the kept fraction itself);
* the kept share of the value bytes (the memory fraction, metadata aside);
* the popularity-weighted kept fraction ``sum_g share_g * kept_g / B``.

The popularity share per group is an input: the caller computes it from training counts
(``group_popularity_share``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fedrule.model.elastic import ElasticLayout


def group_popularity_share(layout: ElasticLayout, item_counts: np.ndarray) -> np.ndarray:
    """Share of the training interactions held by each group (sums to 1; uniform if no counts)."""
    counts = np.bincount(
        layout.group_of_item,
        weights=np.asarray(item_counts, dtype=np.float64),
        minlength=layout.num_groups,
    )
    total = counts.sum()
    if total <= 0:
        return np.full(layout.num_groups, 1.0 / layout.num_groups)
    return counts / total


@dataclass(frozen=True, eq=False)
class ConfigFeatures:
    """Maps configurations (C x G x B bool) to feature rows (C x ``dim`` float32)."""

    num_groups: int
    num_blocks: int
    popularity_share: np.ndarray  # G, sums to 1
    bytes_per_block: np.ndarray  # G

    @classmethod
    def from_layout(cls, layout: ElasticLayout, popularity_share: np.ndarray) -> ConfigFeatures:
        share = np.asarray(popularity_share, dtype=np.float64)
        if share.shape != (layout.num_groups,):
            raise ValueError(
                f"popularity_share has shape {share.shape}, expected ({layout.num_groups},)"
            )
        return cls(
            layout.num_groups,
            layout.num_blocks,
            share / max(share.sum(), 1e-12),
            layout.bytes_per_block.astype(np.float64),
        )

    @property
    def dim(self) -> int:
        return self.num_groups * self.num_blocks + self.num_groups + 2

    def matrix(self) -> np.ndarray:
        """The linear map: ``features = mask.reshape(C, G*B) @ matrix`` (G*B x dim)."""
        g, b = self.num_groups, self.num_blocks
        per_group = np.zeros((g * b, g))
        per_group[np.arange(g * b), np.repeat(np.arange(g), b)] = 1.0 / b
        memory = np.repeat(self.bytes_per_block / self.bytes_per_block.sum(), b) / b
        popular = np.repeat(self.popularity_share, b) / b
        return np.concatenate(
            [
                np.eye(g * b),
                per_group * (self.popularity_share * g)[None, :],
                memory[:, None],
                popular[:, None],
            ],
            axis=1,
        )

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        configs = np.asarray(configs, dtype=bool)
        if configs.ndim == 2:
            configs = configs[None]
        if configs.shape[1:] != (self.num_groups, self.num_blocks):
            raise ValueError(
                f"configurations of shape {configs.shape[1:]}, expected "
                f"({self.num_groups}, {self.num_blocks})"
            )
        mask = configs.reshape(configs.shape[0], -1).astype(np.float32)
        kept = configs.sum(axis=2) / self.num_blocks  # C x G
        share = self.popularity_share
        extra = np.concatenate(
            [
                kept * (share * self.num_groups)[None, :],
                (kept @ self.bytes_per_block / self.bytes_per_block.sum())[:, None],
                (kept @ share)[:, None],
            ],
            axis=1,
        )
        return np.concatenate([mask, extra.astype(np.float32)], axis=1)

    def state(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_blocks": self.num_blocks,
            "popularity_share": self.popularity_share.tolist(),
            "bytes_per_block": self.bytes_per_block.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConfigFeatures:
        return cls(
            int(state["num_groups"]),
            int(state["num_blocks"]),
            np.asarray(state["popularity_share"], dtype=np.float64),
            np.asarray(state["bytes_per_block"], dtype=np.float64),
        )
