"""The centralised RULE experiment of one seed: estimator, search per budget, and references.

After the supernet is trained: label sampled configurations by real validation quality, fit the
estimator, and for every budget and searcher pick a configuration and measure it on test. The
references are trained in the same run: plain BPR-MF with its configuration searched the same
way (what supernet training buys), and BPR-MF trained directly at the dimension of equal memory
(what retraining per budget buys, and what it costs in time); ``references.baselines`` adds other
item-table formats at equal bytes (``fedrule.engine.baselines``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from fedrule import seeds
from fedrule.data.split import SplitData, UserItems
from fedrule.engine.baselines import PlainModel, baseline_rows
from fedrule.engine.training import train_model
from fedrule.events import Events
from fedrule.metrics import head_items
from fedrule.model.elastic import HEADER, ElasticLayout
from fedrule.model.mf import ElasticMF
from fedrule.model.train import evaluate_full, evaluate_full_users
from fedrule.scenario.schema import Scenario
from fedrule.search import customize, verify
from fedrule.search.estimator import PerformanceEstimator
from fedrule.search.labels import label_configs, objective_labels


def reported_keys(scenario: Scenario) -> tuple[str, ...]:
    """Recall and NDCG at the model-selection cut-off, overall and on tail items."""
    k = scenario.eval.metric.partition("@")[2]
    return (f"recall@{k}", f"ndcg@{k}", f"tail/recall@{k}", f"tail/ndcg@{k}")


def label_and_fit(
    model: ElasticMF,
    split: SplitData,
    layout: ElasticLayout,
    scenario: Scenario,
    seed: int,
) -> tuple[PerformanceEstimator, dict]:
    """Label configurations by validation quality (batched) and fit the estimator."""
    est = scenario.estimator
    rng = np.random.default_rng(np.random.SeedSequence([seed, seeds.LABEL_DEVICES]))
    configs = customize.sample_configs(layout, est.configs, rng)
    users = np.flatnonzero(np.diff(split.valid.indptr) > 0)
    if est.label_users and est.label_users < users.size:
        users = np.sort(rng.choice(users, size=est.label_users, replace=False))
    started = time.perf_counter()
    labels = measure(model, split, layout, scenario, configs, users)
    label_seconds = time.perf_counter() - started
    estimator, report = customize.fit(layout, configs, labels, split.item_popularity(), est, seed)
    report.update(label_seconds=label_seconds, label_users=int(users.size))
    return estimator, report


def measure(
    model: ElasticMF,
    split: SplitData,
    layout: ElasticLayout,
    scenario: Scenario,
    configs: np.ndarray,
    users: np.ndarray,
) -> np.ndarray:
    """The search objective of each configuration on ``users``' validation items (batched)."""
    tail_weight = scenario.search.tail_weight
    heads = head_items(split.item_popularity(), scenario.eval.head_share) if tail_weight else None
    with torch.no_grad():
        sums = label_configs(
            model.user.detach()[torch.from_numpy(users)],
            model.item.detach(),
            layout,
            configs,
            _pairs(split.train, users),
            _pairs(split.valid, users),
            scenario.eval.ks,
            item_is_head=heads,
        )
    return objective_labels(sums, scenario.eval.metric, tail_weight)


def _pairs(part: UserItems, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.diff(part.indptr)[users]
    rows = np.repeat(np.arange(users.size), counts)
    starts = part.indptr[users]
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, part.items[np.repeat(starts, counts) + offsets]


def searched_rows(
    method: str,
    model: ElasticMF,
    split: SplitData,
    layout: ElasticLayout,
    estimator: PerformanceEstimator,
    scenario: Scenario,
    seed: int,
    searchers: list[str],
    is_head: torch.Tensor,
    per_user: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """One row per (budget, searcher): the configuration's bytes and its test quality. With
    ``per_user``, the main searcher's configurations' test metric per user is added to it
    (``user_column``), for comparisons paired with a fleet's devices."""
    resolved = [b.resolve(layout.full_table_bytes) for b in scenario.search.budgets]
    found = {  # per searcher, increasing budgets warm-started: monotone predictions
        name: customize.search_all(layout, resolved, estimator, scenario.search, seed, name)
        for name in searchers
    }
    if scenario.search.verify:  # each budget's best measured candidate, on every valid user
        users = np.flatnonzero(np.diff(split.valid.indptr) > 0)
        for name, results in found.items():
            configs = verify.candidates(layout, results, popularity=split.item_popularity())
            measured = measure(model, split, layout, scenario, configs, users)
            found[name] = verify.choose(layout, results, configs, measured, estimator)
    rows = []
    for budget, budget_bytes in zip(scenario.search.budgets, resolved, strict=True):
        for name in searchers:
            result = found[name][budget_bytes]
            weights = layout.item_weights(result.config)
            if per_user is not None and name == scenario.search.searcher:  # one ranking for both
                test, values = evaluate_full_users(
                    model, split, "test", scenario.eval, is_head, item_weights=weights
                )
                per_user[user_column(method, scenario.eval.metric, budget_bytes)] = values
            else:
                test = evaluate_full(
                    model, split, "test", scenario.eval, is_head, item_weights=weights
                )
            rows.append(
                {
                    "method": method,
                    "searcher": name,
                    "budget": budget.text,
                    "budget_bytes": budget_bytes,
                    "bytes": result.bytes,
                    "predicted": result.predicted,
                    "measured": result.measured,
                    "search_seconds": result.seconds,
                    **{k: v for k, v in test.means().items() if k in reported_keys(scenario)},
                }
            )
    return rows


def user_column(method: str, metric: str, budget_bytes: int) -> str:
    """The column of ``users-seed<N>.csv`` holding a method's per-user test metric at a budget
    (its main searcher's configuration), e.g. ``rule ndcg@20 59296``."""
    return f"{method} {metric} {budget_bytes}"


def plain_scenario(scenario: Scenario, dim: int | None = None) -> Scenario:
    """The same scenario with plain BPR-MF training (no sub-configurations, no regulariser)."""
    train = dataclasses.replace(scenario.train, sampling="none", lambda_div=0.0)
    model = scenario.model
    if dim is not None:
        model = dataclasses.replace(model, dim=dim, blocks=1)
    return dataclasses.replace(scenario, train=train, model=model)


def train_reference(
    scenario: Scenario,
    split: SplitData,
    seed: int,
    is_head: torch.Tensor,
    events: Events,
    what: str,
) -> tuple[ElasticMF, ElasticLayout, float]:
    """Train a plain BPR-MF; returns the model, its layout and the training seconds."""
    model, layout, result = train_model(scenario, split, seed, is_head, events, what)
    return model, layout, result.seconds


def equal_memory_dim(budget_bytes: int, n_items: int, bytes_per_value: int) -> int:
    """The largest dimension whose plain table (plus a header) fits the budget."""
    return max(0, (budget_bytes - HEADER.size) // (n_items * bytes_per_value))


def run_rule_experiment(
    scenario: Scenario,
    split: SplitData,
    seed: int,
    supernet: ElasticMF,
    layout: ElasticLayout,
    is_head: torch.Tensor,
    events: Events,
) -> dict:
    """Everything the RULE table needs for one seed; returns rows and the estimator state."""
    searchers = list(dict.fromkeys([scenario.search.searcher, *scenario.search.compare]))
    events.message(f"labelling {scenario.estimator.configs} configurations on validation")
    estimator, report = label_and_fit(supernet, split, layout, scenario, seed)
    events.message(
        f"estimator: held-out Spearman {report['holdout_spearman']:.3f} "
        f"(labels in {report['label_seconds']:.1f} s)"
    )
    per_user: dict[str, np.ndarray] = {}
    rows = searched_rows(
        "rule", supernet, split, layout, estimator, scenario, seed, searchers, is_head, per_user
    )
    full_bytes = layout.full_table_bytes
    plain_cfg = plain_scenario(scenario)
    reference = None
    if scenario.references.plain or "full" in scenario.references.baselines:
        plain, plain_layout, seconds = train_reference(
            plain_cfg, split, seed, is_head, events, "plain BPR-MF"
        )
        reference = PlainModel(plain, plain_layout, seconds)
    if scenario.references.plain:
        plain_estimator, _ = label_and_fit(plain, split, plain_layout, plain_cfg, seed)
        rows += searched_rows(
            "plain+search",
            plain,
            split,
            plain_layout,
            plain_estimator,
            scenario,
            seed,
            [scenario.search.searcher],
            is_head,
            per_user,
        )
        test = evaluate_full(plain, split, "test", scenario.eval, is_head).means()
        metrics = {k: test[k] for k in reported_keys(scenario)}
        rows.append(_reference_row("plain-full", "full", full_bytes, full_bytes, seconds, metrics))
    if scenario.references.retrained:
        for budget in scenario.search.budgets:
            budget_bytes = budget.resolve(full_bytes)
            dim = equal_memory_dim(budget_bytes, split.n_items, scenario.model.bytes_per_value)
            if dim < 1:
                continue
            cfg = plain_scenario(scenario, dim=dim)
            model, _, seconds = train_reference(
                cfg, split, seed, is_head, events, f"BPR-MF d={dim} for {budget.text}"
            )
            test = evaluate_full(model, split, "test", cfg.eval, is_head).means()
            used = HEADER.size + split.n_items * dim * scenario.model.bytes_per_value
            metrics = {"dim": dim, **{k: test[k] for k in reported_keys(scenario)}}
            rows.append(
                _reference_row("retrained", budget.text, budget_bytes, used, seconds, metrics)
            )
    rows += baseline_rows(
        scenario, split, seed, is_head, events, reported_keys(scenario), reference
    )
    return {
        "rows": rows,
        "estimator": report,
        "users": per_user,
        "checkpoint": {
            "estimator": estimator.state_dict(),
            "popularity": torch.from_numpy(split.item_popularity()),
        },
    }


def _reference_row(
    method: str, budget: str, budget_bytes: int, used: int, seconds: float, metrics: dict
) -> dict:
    return {
        "method": method,
        "searcher": "",
        "budget": budget,
        "budget_bytes": budget_bytes,
        "bytes": used,
        "train_seconds": seconds,
        **metrics,
    }
