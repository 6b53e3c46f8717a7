"""Supernet training: which sub-configurations of the elastic item table a step trains.

``sampling``: ``sandwich`` (full + smallest + one random configuration per step, the default of
the RULE method), ``random`` (full + two random configurations: the same cost as sandwich, no
smallest one) and ``none`` (full only: plain BPR-MF, the ablation). Losses of the configurations
are summed, as in sandwich-rule training of weight-sharing supernets (``fedrule.model.objective``).
Both trainers draw their samples here.
"""

from __future__ import annotations

import numpy as np

from fedrule.model.elastic import ElasticLayout

SAMPLINGS = ("sandwich", "random", "none")


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
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}")
    if sampling == "none":
        return np.zeros((steps, 0, *layout.shape), dtype=bool)
    g, b = layout.shape
    counts = rng.integers(layout.min_blocks, b + 1, size=(steps, 2, g))
    if sampling == "sandwich":
        counts[:, 0, :] = max(layout.min_blocks, 1)
    order = np.argsort(rng.random((steps, 2, g, b)), axis=-1)  # the first `count` are kept
    configs = np.empty((steps, 2, g, b), dtype=bool)
    np.put_along_axis(configs, order, np.arange(b) < counts[..., None], axis=-1)
    return configs if allowed is None else inside(configs, allowed, rng)


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
