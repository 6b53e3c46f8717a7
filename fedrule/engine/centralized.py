"""One seed of a centralised run: train the model, evaluate it on validation and test, and with
``search.budgets`` run the RULE experiment on it (``fedrule.engine.rule``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrule.data.split import SplitData
from fedrule.engine.rule import run_rule_experiment
from fedrule.engine.training import build_layout, item_heads, train_model
from fedrule.errors import BudgetError
from fedrule.events import Events
from fedrule.metrics import MetricSums
from fedrule.model.elastic import ElasticLayout
from fedrule.model.train import TrainResult, evaluate_full
from fedrule.scenario.schema import Scenario


@dataclass
class SeedResult:
    seed: int
    valid: dict[str, float]
    test: dict[str, float]
    train: TrainResult
    layout: ElasticLayout
    extra: dict = field(default_factory=dict)


def run_centralized_seed(
    scenario: Scenario, split: SplitData, seed: int, events: Events
) -> SeedResult:
    """One seed; PyTorch runs with ``engine.num_cpus`` threads (0: all cores) and the previous
    thread count is restored afterwards."""
    with torch_threads(scenario.engine.num_cpus):
        return _run_seed(scenario, split, seed, events)


@contextmanager
def torch_threads(num: int) -> Iterator[None]:
    """Limit PyTorch's intra-op threads to ``num`` (0: leave as is) for the block."""
    before = torch.get_num_threads()
    if num > 0:
        torch.set_num_threads(num)
    try:
        yield
    finally:
        if num > 0:
            torch.set_num_threads(before)


def _run_seed(scenario: Scenario, split: SplitData, seed: int, events: Events) -> SeedResult:
    if scenario.engine.num_cpus > 0:
        events.message(f"torch threads: {torch.get_num_threads()} (engine.num_cpus)")
    torch.manual_seed(seed)
    layout = build_layout(scenario.model, split.item_popularity())
    is_head = item_heads(split, scenario.eval.head_share)
    for i, budget in enumerate(scenario.search.budgets):  # fail before training, not after
        try:
            layout.check_budget(budget.resolve(layout.full_table_bytes), f"budget {budget}")
        except BudgetError as err:
            raise BudgetError(err.message, path=f"search.budgets[{i}]") from None
    model, layout, result = train_model(scenario, split, seed, is_head, events, "training", layout)
    started = time.perf_counter()
    valid = evaluate_full(model, split, "valid", scenario.eval, is_head).means()
    test = evaluate_full(model, split, "test", scenario.eval, is_head).means()
    events.message(f"evaluated validation and test in {time.perf_counter() - started:.2f} s")
    extra = {}
    if scenario.search.budgets:
        extra = run_rule_experiment(scenario, split, seed, model, layout, is_head, events)
    return SeedResult(seed=seed, valid=valid, test=test, train=result, layout=layout, extra=extra)


def summarize(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (sample) standard deviation of each metric over seeds."""
    keys = per_seed[0].keys()
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([r[key] for r in per_seed], dtype=np.float64)
        out[key] = {
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0,
        }
    return out


__all__ = [
    "MetricSums",
    "SeedResult",
    "build_layout",
    "item_heads",
    "run_centralized_seed",
    "summarize",
]
