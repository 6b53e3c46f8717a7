"""Matrix factorisation with elastic item embeddings, scored by dot product (trained with BPR:
``fedrule.model.objective``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

UNSCORED = torch.finfo(torch.float32).min  # items without blocks rank below every scored item


class ElasticMF(nn.Module):
    """User and item embeddings (d columns, cut into ``num_blocks`` blocks for the items)."""

    def __init__(
        self, n_users: int, n_items: int, dim: int, num_blocks: int, init_std: float, seed: int
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_blocks = num_blocks
        generator = torch.Generator().manual_seed(seed)
        self.user = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)


def score_all(
    user_vecs: torch.Tensor, item_table: torch.Tensor, item_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``user_vecs @ (item_table * weights).T`` with per-block weights expanded to columns."""
    if item_weights is not None:
        width = item_table.shape[1] // item_weights.shape[1]
        item_table = item_table * item_weights.repeat_interleave(width, dim=1)
    return user_vecs @ item_table.T


def configured_scores(
    user_vecs: torch.Tensor, item_table: torch.Tensor, item_weights: torch.Tensor | None
) -> torch.Tensor:
    """``score_all``, with items that keep no block at the lowest finite score (``UNSCORED``)."""
    scores = score_all(user_vecs, item_table, item_weights)
    if item_weights is not None:
        scores = scores.masked_fill(~(item_weights > 0).any(dim=1), UNSCORED)
    return scores


def diversity_per_item(item_vecs: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """Per item: mean squared cosine similarity between its distinct blocks (in [0, 1]).

    Scale-free (cosine) and bounded, so its weight means the same at any embedding scale.
    Computed without the B x B Gram matrix: with unit blocks n_b, the sum over all pairs of
    (n_b . n_c)^2 is the squared Frobenius norm of the w x w matrix sum_b n_b n_b^T.
    """
    if num_blocks < 2:
        return item_vecs.new_zeros(item_vecs.shape[:-1])
    blocks = F.normalize(item_vecs.reshape(*item_vecs.shape[:-1], num_blocks, -1), dim=-1, eps=1e-8)
    moment = torch.einsum("...bw,...bv->...wv", blocks, blocks)
    all_pairs = moment.pow(2).sum((-1, -2))
    same_block = blocks.pow(2).sum(-1).pow(2).sum(-1)
    return (all_pairs - same_block) / (num_blocks * (num_blocks - 1))
