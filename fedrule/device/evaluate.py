"""Device-side evaluation: label candidate configurations, and test a dispatched sub-embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import CohortData
from fedrule.metrics import ranks_of_relevant, row_values_from_ranks
from fedrule.model.elastic import ElasticLayout, decode
from fedrule.search.labels import ConfigSums, label_configs


def label_on_devices(
    user_vecs: torch.Tensor,
    table: torch.Tensor,
    layout: ElasticLayout,
    configs: np.ndarray,
    data: CohortData,
    ks: list[int],
) -> ConfigSums:
    """Summed validation metrics of every configuration over the cohort's devices.

    Each device ranks all items except its training items and scores its own validation item.
    """
    return label_configs(
        user_vecs, table, layout, configs, data.train.pairs(), data.valid.pairs(), ks
    )


@dataclass
class TestReport:
    """Per device of a cohort: accepted?, bytes received, and test metrics (NaN if refused)."""

    accepted: np.ndarray
    bytes_received: np.ndarray
    metrics: dict[str, np.ndarray]
    evaluated: np.ndarray  # has a test item (else metrics are NaN)


def test_dispatched(
    payloads: list[bytes],
    payload_of_device: np.ndarray,
    budget_bytes: np.ndarray,
    user_vecs: torch.Tensor,
    data: CohortData,
    ks: list[int],
) -> TestReport:
    """Every device checks its payload against its budget (refusing an oversized one), decodes it,
    ranks all items except its training and validation items, and scores its test items."""
    n = data.size
    sizes = np.array([len(p) for p in payloads], dtype=np.int64)
    received = sizes[payload_of_device]
    accepted = received <= budget_bytes
    keys = [f"{m}@{k}" for k in sorted(ks) for m in ("recall", "ndcg", "hit")]
    metrics = {key: np.full(n, np.nan) for key in keys}
    evaluated = np.zeros(n, dtype=bool)
    for index in np.unique(payload_of_device[accepted]):
        members = np.flatnonzero(accepted & (payload_of_device == index))
        sub = decode(payloads[index])  # the same bytes decode the same way on every device
        part = data.take(members)
        with torch.no_grad():
            scores = sub.score(user_vecs[members]).clone()
            for rows in (part.train, part.valid):
                dev, items = rows.pairs()
                scores[torch.from_numpy(dev), torch.from_numpy(items)] = float("-inf")
            dev, items = (torch.from_numpy(a) for a in part.test.pairs())
            ranks = ranks_of_relevant(scores, dev, items)
            values, has = row_values_from_ranks(ranks, dev, members.size, ks)
        for key in keys:
            metrics[key][members] = np.where(has.numpy(), values[key].numpy(), np.nan)
        evaluated[members] = has.numpy()
    return TestReport(accepted, received, metrics, evaluated)
