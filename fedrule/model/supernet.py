"""Supernet training objective: BPR under the full and under sampled sub-configurations.

``sampling``: ``sandwich`` (full + smallest + one random configuration per step, the default of
the RULE method), ``random`` (full + two random configurations: the same cost as sandwich, no
smallest one) and ``none`` (full only: plain BPR-MF, the ablation). Losses of the configurations
are summed, as in sandwich-rule training of weight-sharing supernets.
"""

from __future__ import annotations

import numpy as np
import torch

from fedrule.model.elastic import ElasticLayout
from fedrule.model.mf import bpr_loss

SAMPLINGS = ("sandwich", "random", "none")


def smallest_config(layout: ElasticLayout, rng: np.random.Generator) -> np.ndarray:
    """Each group keeps ``max(min_blocks, 1)`` randomly chosen blocks."""
    counts = np.full(layout.num_groups, max(layout.min_blocks, 1))
    return layout.random_config(rng, counts)


def sample_subconfigs(
    layout: ElasticLayout,
    sampling: str,
    rng: np.random.Generator,
    allowed: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The sub-configurations trained in one step besides ``allowed`` (default: full) itself.

    With ``allowed`` (a configuration a budgeted device may train), samples are drawn inside it.
    """
    if sampling == "none":
        return []
    if sampling == "sandwich":
        configs = [smallest_config(layout, rng), layout.random_config(rng)]
    elif sampling == "random":
        configs = [layout.random_config(rng), layout.random_config(rng)]
    else:
        raise ValueError(f"unknown sampling {sampling!r}")
    if allowed is not None:
        configs = [inside(c, allowed, rng) for c in configs]
    return configs


def inside(config: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``config`` (... x G x B) restricted to ``allowed`` (G x B), keeping at least one allowed
    block in every group that has one (a random allowed block where the restriction left none)."""
    out = config & allowed
    empty = ~out.any(axis=-1) & allowed.any(axis=-1)
    if empty.any():
        noise = rng.random(config.shape) + allowed  # allowed blocks score in [1, 2)
        pick = np.argmax(noise, axis=-1)
        out[empty, pick[empty]] = True
    return out


def elastic_bpr_loss(
    pos_blocks: torch.Tensor,
    neg_blocks: torch.Tensor,
    pos_groups: torch.Tensor,
    neg_groups: torch.Tensor,
    base_weights: torch.Tensor | None,
    sub_weights: list[torch.Tensor],
) -> torch.Tensor:
    """Sum of BPR losses under the base configuration and each sub-configuration.

    ``*_blocks`` hold per-block partial scores (pairs x B, negatives x B); ``*_weights`` are
    G x B group weights (``None`` for the full configuration).
    """
    total = pos_blocks.new_zeros(())
    for weights in [base_weights, *sub_weights]:
        if weights is None:
            pos, neg = pos_blocks.sum(-1), neg_blocks.sum(-1)
        else:
            pos = (pos_blocks * weights[pos_groups]).sum(-1)
            neg = (neg_blocks * weights[neg_groups]).sum(-1)
        total = total + bpr_loss(pos, neg)
    return total
