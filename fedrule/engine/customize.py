"""Retrain-free customisation of a finished run: search configurations for new budgets.

Loads the run's checkpoint (supernet item table, item groups, estimator), searches each budget,
and with ``verify`` measures the chosen configuration on the run's validation and test data
(centralised runs only: a federated run's user vectors never left the devices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedrule.algorithm.methods import get_method
from fedrule.data.split import SplitData
from fedrule.errors import ConfigError, FedruleError
from fedrule.model.codec import elastic_codec_of_groups
from fedrule.model.elastic import ElasticLayout
from fedrule.scenario import Scenario, load_scenario
from fedrule.search import customize
from fedrule.search.estimator import PerformanceEstimator
from fedrule.units import Budget


@dataclass
class Customization:
    budget: str
    budget_bytes: int
    bytes: int
    blocks_per_group: list[int]
    predicted: float
    seconds: float
    verified: dict[str, float]


def load_run(run_dir: Path, seed: int | None) -> tuple[Scenario, dict]:
    if not (run_dir / "scenario.yaml").is_file():
        raise ConfigError("not a fedrule run folder (no scenario.yaml)", path=str(run_dir))
    scenario = load_scenario(run_dir / "scenario.yaml")
    seed = scenario.seeds[0] if seed is None else seed
    path = run_dir / f"model-seed{seed}.pt"
    if not path.is_file():
        raise ConfigError(f"no checkpoint for seed {seed}", path=str(path))
    try:  # plain tensors and containers only: opening a run folder never executes its code
        checkpoint = torch.load(path, weights_only=True)
    except Exception as err:
        raise FedruleError(
            f"cannot read the model file ({type(err).__name__}); is it truncated or not fedrule's?",
            path=str(path),
        ) from None
    if not isinstance(checkpoint, dict) or "item" not in checkpoint:
        raise FedruleError("not a fedrule model file", path=str(path))
    method = checkpoint.get("method", "rule")
    if not get_method(method, path=str(run_dir)).labels_and_searches:
        raise ConfigError(
            f"a federated.method: {method} run has no supernet or estimator to search",
            path=str(run_dir),
            hint="fedrule search needs a RULE run (federated.method: rule)",
        )
    _check_shape(scenario, checkpoint, path)
    if "estimator" not in checkpoint:
        raise FedruleError(
            "this run has no estimator: run a scenario with search.budgets (centralised) "
            "or engine.kind: federated",
            path=str(run_dir),
        )
    return scenario, checkpoint


def _check_shape(scenario: Scenario, checkpoint: dict, path: Path) -> None:
    """The model file must match its scenario.yaml (an edited scenario is refused)."""
    item, groups = checkpoint["item"], checkpoint.get("group_of_item")
    model = scenario.model
    problems = []
    if item.ndim != 2 or item.shape[1] != model.dim:
        problems.append(f"item table {tuple(item.shape)} vs model.dim {model.dim}")
    if groups is not None and groups.numel() != item.shape[0]:
        problems.append(f"{groups.numel()} item groups for {item.shape[0]} items")
    features = checkpoint.get("estimator", {}).get("features", {})
    if features and int(features.get("num_blocks", model.blocks)) != model.blocks:
        problems.append(f"estimator of {features['num_blocks']} blocks vs model.blocks")
    if problems:
        raise ConfigError(
            "the model file does not match its scenario.yaml: " + "; ".join(problems),
            path=str(path),
            hint="was scenario.yaml edited?",
        )


def customize_run(
    run_dir: Path,
    budgets: list[Budget],
    searcher: str | None,
    verify: bool,
    seed: int | None = None,
) -> list[Customization]:
    scenario, checkpoint = load_run(run_dir, seed)
    model = scenario.model
    layout = elastic_codec_of_groups(model, checkpoint["group_of_item"].numpy())
    estimator = PerformanceEstimator.from_state(checkpoint["estimator"])
    if verify and checkpoint.get("kind") != "centralized":
        raise FedruleError(
            "--verify needs the user vectors, which a federated run leaves on the devices",
            path=str(run_dir),
        )
    split = is_head = None
    if verify:
        from fedrule.engine.prepare import prepare_split
        from fedrule.engine.training import item_heads

        split = prepare_split(scenario.data, scenario.seeds[0])
        is_head = item_heads(split, scenario.eval.head_share)
    resolved = [budget.resolve(layout.full_table_bytes) for budget in budgets]
    found = customize.search_all(  # increasing budgets, warm-started: monotone predictions
        layout, resolved, estimator, scenario.search, checkpoint["seed"], searcher
    )
    out = []
    for budget, budget_bytes in zip(budgets, resolved, strict=True):
        result = found[budget_bytes]
        verified = {}
        if verify:
            verified = _verify(checkpoint, layout, result.config, split, scenario, is_head)
        out.append(
            Customization(
                budget=budget.text,
                budget_bytes=budget_bytes,
                bytes=result.bytes,
                blocks_per_group=result.config.sum(axis=1).tolist(),
                predicted=result.predicted,
                seconds=result.seconds,
                verified=verified,
            )
        )
    return out


def _verify(
    checkpoint: dict,
    layout: ElasticLayout,
    config: np.ndarray,
    split: SplitData,
    scenario: Scenario,
    is_head: torch.Tensor,
) -> dict[str, float]:
    from fedrule.model.evaluate import evaluate_ranking
    from fedrule.model.mf import configured_scores

    users, items = checkpoint["user"], checkpoint["item"]
    weights = layout.item_weights(config)
    k = scenario.eval.metric.partition("@")[2]
    out = {}
    for target in ("valid", "test"):
        means = evaluate_ranking(
            lambda rows: configured_scores(users[rows], items, weights),
            split,
            target=target,
            ks=scenario.eval.ks,
            item_is_head=is_head,
            batch_users=scenario.eval.batch_users,
        ).means()
        for name in (f"recall@{k}", f"ndcg@{k}"):
            out[f"{target} {name}"] = means[name]
    return out


def compact_blocks(blocks_per_group: list[int]) -> str:
    """``[8, 8, 8, 4, 4, 1]`` -> ``8x3 4x2 1``: blocks kept per group, most popular first."""
    parts = []
    for value in blocks_per_group:
        if parts and parts[-1][0] == value:
            parts[-1][1] += 1
        else:
            parts.append([value, 1])
    return " ".join(f"{v}x{n}" if n > 1 else str(v) for v, n in parts)
