"""Configurations to label: spread over the whole memory range, with varied shapes.

Sizes are stratified: configuration ``i`` (of ``m`` sampled) aims at a kept share of the value
bytes drawn uniformly in the ``i``-th of ``m`` equal strata between the smallest and the full
configuration. Around that level, each configuration gets a *shape* (how blocks are spread over
groups): flat, more blocks to popular groups (low group ids: groups are numbered most popular
first), more to unpopular groups, or random per group. Block subsets are random, except for a
share of configurations that keep each group's first blocks (the form ``uniform`` and ``greedy``
produce). The full and the smallest configuration are always included (first and second).
"""

from __future__ import annotations

import numpy as np

from fedrule.model.elastic import ElasticLayout

SHAPES = ("flat", "popular", "unpopular", "random")


def sample_configs(
    layout: ElasticLayout, n: int, rng: np.random.Generator, *, prefix_share: float = 0.25
) -> np.ndarray:
    """``n`` valid configurations (n x G x B bool): full, smallest, then stratified by size."""
    g, b = layout.shape
    fixed = [layout.full_config(), layout.uniform_config(layout.min_blocks)]
    if n <= len(fixed):
        return np.stack(fixed[:n]) if n > 0 else np.zeros((0, g, b), dtype=bool)
    m = n - len(fixed)
    low = layout.min_blocks / b
    targets = low + (1.0 - low) * (rng.permutation(m) + rng.random(m)) / m
    counts = counts_for_targets(layout, targets, _shapes(rng, m, g))
    prefix = rng.random(m) < prefix_share
    ranks = np.argsort(rng.random((m, g, b)), axis=2).argsort(axis=2)
    ranks[prefix] = np.arange(b)
    sampled = ranks < counts[:, :, None]
    return np.concatenate([np.stack(fixed), sampled])


def counts_for_targets(
    layout: ElasticLayout, targets: np.ndarray, shapes: np.ndarray, iterations: int = 40
) -> np.ndarray:
    """Blocks per group (m x G) with ``round(B * (level + shape_g))`` clipped to the valid range,
    where the level is found by bisection so the kept value-byte share is near ``targets``."""
    b = layout.num_blocks
    weights = layout.bytes_per_block / layout.bytes_per_block.sum()
    lo = np.full(targets.size, -2.0)
    hi = np.full(targets.size, 2.0)

    def counts_at(level: np.ndarray) -> np.ndarray:
        raw = np.rint(b * (level[:, None] + shapes))
        return np.clip(raw, layout.min_blocks, b).astype(np.int64)

    for _ in range(iterations):
        mid = (lo + hi) / 2
        share = counts_at(mid) @ weights / b
        below = share < targets
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return counts_at(hi)


def _shapes(rng: np.random.Generator, m: int, g: int) -> np.ndarray:
    """Per configuration, an offset per group (in units of B) that tilts blocks between groups."""
    kind = rng.integers(len(SHAPES), size=m)
    amplitude = rng.uniform(0.0, 1.0, size=(m, 1))
    slope = np.linspace(0.5, -0.5, g)[None, :] if g > 1 else np.zeros((1, g))
    noise = rng.normal(0.0, 0.03, size=(m, g))
    shapes = np.select(
        [kind[:, None] == 1, kind[:, None] == 2, kind[:, None] == 3],
        [amplitude * slope, -amplitude * slope, rng.normal(0.0, 0.5, size=(m, g)) * amplitude],
        default=0.0,
    )
    return shapes + noise
