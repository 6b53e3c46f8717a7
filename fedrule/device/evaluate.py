"""Device-side evaluation: label candidate configurations, and test a dispatched sub-embedding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fedrule.device.cohort import CohortData
from fedrule.device.local_spec import LocalSpec
from fedrule.device.local_train import local_train
from fedrule.metrics import BUCKETS, ConfigSums, ranks_of_relevant, row_values_from_ranks
from fedrule.model.elastic import ElasticLayout, SubEmbedding
from fedrule.protocol import TEST, VALID
from fedrule.search.labels import label_configs


def personalize(
    user_vecs: torch.Tensor,
    sub: SubEmbedding,
    layout: ElasticLayout,
    data: CohortData,
    spec: LocalSpec | None,
    rngs: list[np.random.Generator],
) -> torch.Tensor:
    """The devices fit their user vectors to the item table they hold (items stay fixed)."""
    if spec is None or data.size == 0:
        return user_vecs
    allowed = None if sub.config.all() else np.repeat(sub.config[None], data.size, axis=0)
    fitted = local_train(
        sub.table, user_vecs, data.train, allowed, layout, spec, rngs, train_items=False
    )
    return fitted.user_vecs


def label_on_devices(
    user_vecs: torch.Tensor,
    table: torch.Tensor,
    layout: ElasticLayout,
    configs: np.ndarray,
    data: CohortData,
    ks: list[int],
    item_is_head: np.ndarray | None = None,
    target: str = VALID,
) -> ConfigSums:
    """Summed validation metrics of every configuration over the cohort's devices.

    Each device ranks all items except its training items and scores its own validation item
    (also per head/tail bucket when ``item_is_head`` is given). ``target`` ``TEST``: it scores
    its test items instead, ranked as a dispatched table is tested (validation items excluded
    as well).
    """
    excluded, relevant = data.train.pairs(), data.valid.pairs()
    if target == TEST:
        excluded = tuple(np.concatenate(a) for a in zip(excluded, relevant, strict=True))
        relevant = data.test.pairs()
    return label_configs(
        user_vecs,
        table,
        layout,
        configs,
        excluded,
        relevant,
        ks,
        item_is_head=item_is_head,
    )


def test_configs_on_devices(
    user_vecs: torch.Tensor,
    full: SubEmbedding,
    layout: ElasticLayout,
    configs: np.ndarray,
    data: CohortData,
    ks: list[int],
    item_is_head: np.ndarray | None,
    personal: LocalSpec | None,
    rngs: Callable[[], list[np.random.Generator]],
    target: str = TEST,
) -> ConfigSums:
    """Summed metrics of every configuration over the cohort's devices, each as if the
    configuration had been dispatched to every device: the devices fit their user vectors to it
    (``personal``; fresh streams from ``rngs`` per configuration, as the dispatched test draws
    them), then score their ``target`` items (test, or validation). Without ``personal`` one
    labelling scores them all."""
    if personal is None or data.size == 0:
        table = full.table
        return label_on_devices(user_vecs, table, layout, configs, data, ks, item_is_head, target)
    parts = []
    for config in configs:
        sub = full.restrict(config)  # what decoding the dispatched payload gives
        fitted = personalize(user_vecs, sub, layout, data, personal, rngs())
        parts.append(
            label_on_devices(
                fitted, sub.table, layout, config[None], data, ks, item_is_head, target
            )
        )
    counts = parts[0].counts  # the same for every configuration
    return ConfigSums({k: np.concatenate([p.sums[k] for p in parts]) for k in counts}, counts)


@dataclass
class TestReport:
    """Per device of a cohort: accepted?, bytes received, test metrics (NaN if refused), and
    the user vectors after on-device personalisation."""

    accepted: np.ndarray
    bytes_received: np.ndarray
    metrics: dict[str, np.ndarray]
    evaluated: np.ndarray  # has a test item (else metrics are NaN)
    user_vecs: torch.Tensor


def metric_names(ks: list[int], buckets: bool) -> list[str]:
    base = [f"{m}@{k}" for k in sorted(ks) for m in ("recall", "ndcg", "hit")]
    return base + ([f"{b}/{name}" for b in BUCKETS for name in base] if buckets else [])


def test_dispatched(
    payloads: list[SubEmbedding],
    payload_bytes: np.ndarray,
    payload_of_device: np.ndarray,
    budget_bytes: np.ndarray,
    user_vecs: torch.Tensor,
    data: CohortData,
    layout_of: Callable[[SubEmbedding], ElasticLayout],
    ks: list[int],
    *,
    item_is_head: torch.Tensor | None = None,
    personal: LocalSpec | None = None,
    rngs: list[np.random.Generator] | None = None,
) -> TestReport:
    """Every device checks its payload's size against its budget (refusing an oversized one),
    fits its user vector to the decoded sub-embedding, ranks all items except its training and
    validation items, and scores its test items (overall, and per head/tail bucket)."""
    n = data.size
    received = payload_bytes[payload_of_device]
    accepted = received <= budget_bytes
    keys = metric_names(ks, item_is_head is not None)
    metrics = {key: np.full(n, np.nan) for key in keys}
    evaluated = np.zeros(n, dtype=bool)
    users = user_vecs.clone()
    for index in np.unique(payload_of_device[accepted]):
        members = np.flatnonzero(accepted & (payload_of_device == index))
        sub = payloads[index]  # the same bytes decode the same way on every device
        part = data.take(members)
        member_rngs = [rngs[m] for m in members] if rngs is not None else []
        users[members] = personalize(
            users[members], sub, layout_of(sub), part, personal, member_rngs
        )
        with torch.no_grad():
            scores = sub.score(users[members]).clone()
            for rows in (part.train, part.valid):
                dev, items = rows.pairs()
                scores[torch.from_numpy(dev), torch.from_numpy(items)] = float("-inf")
            dev, items = (torch.from_numpy(a) for a in part.test.pairs())
            ranks = ranks_of_relevant(scores, dev, items)
        values, has = row_values_from_ranks(ranks, dev, members.size, ks)
        for key, value in values.items():
            metrics[key][members] = np.where(has.numpy(), value.numpy(), np.nan)
        evaluated[members] = has.numpy()
        if item_is_head is not None:
            head = item_is_head[items]
            for bucket, keep in (("head", head), ("tail", ~head)):
                values, has = row_values_from_ranks(ranks[keep], dev[keep], members.size, ks)
                for key, value in values.items():
                    metrics[f"{bucket}/{key}"][members] = np.where(
                        has.numpy(), value.numpy(), np.nan
                    )
    return TestReport(accepted, received, metrics, evaluated, users)
