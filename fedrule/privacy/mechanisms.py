"""Gaussian mechanisms on the device data that is not a training upload: the popularity count
and the label (and validation) sums. The server adds the noise to the total over every request,
after any secure aggregation; the devices bound their own contributions:

- count: each device reports each of its items at most once and at most ``max_items`` of them,
  so adding or removing one device moves the histogram by at most sqrt(max_items) in L2 norm;
- labels: each device adds a value in [0, 1] per configuration and metric (Recall, NDCG and
  HitRate of its own validation items are in [0, 1]) and a count of 0 or 1 per metric, so one
  device moves the C x K sums and the K counts by at most sqrt(K (C + 1)).

The noise's standard deviation is the noise multiplier times the sensitivity; the accountant
(``fedrule.privacy.accounting``) composes each as ``GaussianDpEvent(multiplier)``.
"""

from __future__ import annotations

import math

import numpy as np

from fedrule.metrics import ConfigSums


def count_sensitivity(max_items: int) -> float:
    """L2 sensitivity of the popularity histogram to one device."""
    return math.sqrt(max_items)


def label_sensitivity(num_configs: int, num_keys: int) -> float:
    """L2 sensitivity of one labelling's sums (configs x keys) and counts (keys) to one device."""
    return math.sqrt(num_keys * (num_configs + 1))


def bounded_items(items: np.ndarray, max_items: int, rng: np.random.Generator) -> np.ndarray:
    """What one device reports to a noised count: its distinct items, a uniform sample of
    ``max_items`` of them (its own stream) when it has more; ascending."""
    distinct = np.unique(items)
    if distinct.size <= max_items:
        return distinct
    return np.sort(rng.choice(distinct, size=max_items, replace=False))


def noised_count(
    total: np.ndarray, multiplier: float, max_items: int, rng: np.random.Generator
) -> np.ndarray:
    """The histogram plus N(0, (multiplier sqrt(max_items))^2) per item, rounded to whole
    non-negative counts (post-processing)."""
    std = multiplier * count_sensitivity(max_items)
    noisy = total + rng.normal(0.0, std, size=total.shape)
    return np.maximum(np.rint(noisy), 0).astype(np.int64)


def noised_labels(sums: ConfigSums, multiplier: float, rng: np.random.Generator) -> ConfigSums:
    """Every metric sum and count plus N(0, (multiplier sqrt(K (C + 1)))^2); counts are kept at
    least 1 afterwards so that means stay defined (post-processing)."""
    if not sums.sums:
        return sums
    keys = sorted(sums.sums)
    matrix, counts = sums.to_arrays(keys)
    std = multiplier * label_sensitivity(matrix.shape[0], len(keys))
    matrix = matrix + rng.normal(0.0, std, size=matrix.shape)
    counts = np.maximum(counts + rng.normal(0.0, std, size=counts.shape), 1.0)
    return ConfigSums.from_arrays(keys, matrix, counts)
