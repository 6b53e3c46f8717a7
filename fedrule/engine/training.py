"""Build a scenario's model and train it centrally: the step that the centralised run and the
references of the RULE experiment (plain BPR-MF, BPR-MF at equal memory) share."""

from __future__ import annotations

import numpy as np
import torch

from fedrule.data.split import SplitData
from fedrule.events import Events
from fedrule.metrics import head_items
from fedrule.model.codec import elastic_codec
from fedrule.model.elastic import ElasticLayout
from fedrule.model.mf import ElasticMF
from fedrule.model.train import TrainResult, train_centralized
from fedrule.scenario.schema import ModelConfig, Scenario


def build_layout(model: ModelConfig, popularity: np.ndarray) -> ElasticLayout:
    """Item groups from training popularity, and the configuration space of the model."""
    return elastic_codec(model, popularity)


def item_heads(split: SplitData, head_share: float) -> torch.Tensor:
    return torch.from_numpy(head_items(split.item_popularity(), head_share))


def train_model(
    scenario: Scenario,
    split: SplitData,
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
