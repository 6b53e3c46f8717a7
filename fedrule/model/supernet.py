"""Supernet training: which sub-configurations of the elastic item table a step trains.

``sampling``: ``sandwich`` (full + smallest + one random configuration per step, the default of
the RULE method), ``popular`` (full + smallest + one configuration shaped by popularity: blocks
per group in proportion to the mean popularity of its items, at a random overall size, the shape
the search gives small budgets), ``random`` (full + two random configurations: the same cost as
sandwich, no smallest one) and ``none`` (full only: plain BPR-MF, the ablation). Losses of the
configurations are summed, as in sandwich-rule training of weight-sharing supernets
(``fedrule.model.objective``). Both trainers draw their samples here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.names import SAMPLINGS


def sample_subconfigs(
    layout: ElasticLayout,
    sampling: str,
    rng: np.random.Generator,
    steps: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """The sub-configurations trained besides the full one in each of ``steps`` steps:
    steps x S x G x B booleans (S = 2, or 0 for ``none``).

    A sampled configuration keeps a random subset of blocks per group, of a size uniform in
    [min_blocks, B] (the sandwich's smallest one: ``max(min_blocks, 1)``). With ``allowed`` (what
    a budgeted device holds, G x B), samples are restricted to it (``inside``).
    """
    configs = build_subconfigs([draw_subconfigs(layout, sampling, rng, steps)], layout)
    return configs if allowed is None else inside(configs, allowed, rng)


@dataclass(frozen=True)
class SubconfigDraws:
    """The random draws of ``steps`` steps' sub-configurations: per configuration and group
    how many blocks it keeps (steps x S x G), and a score per block (the lowest are kept)."""

    counts: np.ndarray
    scores: np.ndarray


def draw_subconfigs(
    layout: ElasticLayout, sampling: str, rng: np.random.Generator, steps: int
) -> SubconfigDraws:
    """What ``sample_subconfigs`` draws from ``rng``, in the same order; ``build_subconfigs``
    turns the draws of many streams into configurations at once."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}")
    g, b = layout.shape
    if sampling == "none":
        return SubconfigDraws(np.zeros((steps, 0, g), np.int64), np.zeros((steps, 0, g, b)))
    counts = rng.integers(layout.min_blocks, b + 1, size=(steps, 2, g))
    if sampling in ("sandwich", "popular"):
        counts[:, 0, :] = max(layout.min_blocks, 1)
    if sampling == "popular":
        counts[:, 1, :] = popular_counts(layout, rng, steps)
    return SubconfigDraws(counts, rng.random((steps, 2, g, b)))


def popular_counts(layout: ElasticLayout, rng: np.random.Generator, steps: int) -> np.ndarray:
    """Blocks per group (steps x G) in proportion to the mean popularity of the group's items,
    ``clip(floor(s * p_g / max p + u), min_blocks, B)`` with ``u`` uniform in [0, 1) and the
    scale ``s`` log-uniform between 1 (the most popular group keeps about one block) and the
    scale at which every group is full. Groups hold equal interaction mass, so a group's mean
    popularity is in inverse proportion to its size: the layout alone gives it
    (``ElasticLayout.size_popularity``), as devices estimate popularity for their negatives."""
    ratio = layout.size_popularity
    top = layout.num_blocks
    scale = np.exp(rng.uniform(0.0, np.log(top / ratio.min() + 1.0), size=(steps, 1)))
    raw = np.floor(scale * ratio + rng.random((steps, ratio.size)))
    return np.clip(raw, layout.min_blocks, top).astype(np.int64)


def build_subconfigs(draws: list[SubconfigDraws], layout: ElasticLayout) -> np.ndarray:
    """The configurations of every draw, steps after steps (sum of steps x S x G x B)."""
    g, b = layout.shape
    counts = np.concatenate([d.counts for d in draws]) if draws else np.zeros((0, 0, g), int)
    if counts.shape[1] == 0:
        return np.zeros((*counts.shape[:2], g, b), dtype=bool)
    scores = np.concatenate([d.scores for d in draws])
    # the `count` lowest scores are kept: those at most the count-th smallest (none for 0)
    ranked = np.sort(scores, axis=-1)
    at = np.maximum(counts, 1)[..., None] - 1
    threshold = np.where(counts[..., None] > 0, np.take_along_axis(ranked, at, axis=-1), -1.0)
    return scores <= threshold


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
