"""One seed of a centralised run: build the model, train it, evaluate it on validation and test."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from fedrule.engine.events import Events
from fedrule.errors import BudgetError
from fedrule.metrics import MetricSums, head_items
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.model.mf import ElasticMF
from fedrule.model.train import TrainResult, evaluate_full, train_centralized
from fedrule.scenario.schema import ModelConfig, Scenario


@dataclass
class SeedResult:
    seed: int
    valid: dict[str, float]
    test: dict[str, float]
    train: TrainResult
    layout: ElasticLayout
    extra: dict = field(default_factory=dict)


def build_layout(model: ModelConfig, popularity: np.ndarray) -> ElasticLayout:
    """Item groups from training popularity, and the configuration space of the model."""
    groups = make_groups(popularity, model.groups, model.grouping)
    return ElasticLayout(
        dim=model.dim,
        num_blocks=model.blocks,
        group_of_item=groups,
        min_blocks=model.min_blocks_per_group,
        bytes_per_value=model.bytes_per_value,
        rescale=model.rescale,
    )


def item_heads(split: object, head_share: float) -> torch.Tensor:
    return torch.from_numpy(head_items(split.item_popularity(), head_share))


def train_model(
    scenario: Scenario,
    split: object,
    seed: int,
    is_head: torch.Tensor,
    events: Events,
    title: str,
    layout: ElasticLayout | None = None,
) -> tuple[ElasticMF, ElasticLayout, TrainResult]:
    """Build the scenario's model and train it centrally (one progress bar)."""
    if layout is None:
        layout = build_layout(scenario.model, split.item_popularity())
    model = ElasticMF(
        split.n_users,
        split.n_items,
        scenario.model.dim,
        scenario.model.blocks,
        scenario.model.init_std,
        seed,
    )
    events.phase(f"{title} (seed {seed})", scenario.train.epochs)
    result = train_centralized(
        split,
        layout,
        model,
        scenario.train,
        scenario.eval,
        seed=seed,
        item_is_head=is_head,
        on_epoch=events.advance,
    )
    events.end_phase()
    return model, layout, result


def run_centralized_seed(
    scenario: Scenario, split: object, seed: int, events: Events
) -> SeedResult:
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
        from fedrule.engine.rule import run_rule_experiment

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


__all__ = ["MetricSums", "SeedResult", "build_layout", "run_centralized_seed", "summarize"]
