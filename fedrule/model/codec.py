"""``ItemCodec``: a format of the item table that devices receive, store, score with and train.

A codec says which configurations it offers (``full_config``, ``shape``), what each costs on a
device (``memory_bytes``, exactly the size of the encoded payload, metadata included), how a
server-side table becomes a payload (``encode``) and how a device rebuilds a scorer from it
(``decode``, returning a ``ReceivedTable``). The federated algorithm and the devices use only this
interface for messages, budgets and dispatch.

The elastic (RULE) table, ``fedrule.model.elastic.ElasticLayout``, is the first codec; the
baselines (hashing, quotient-remainder, popularity) are in ``fedrule.model.codecs``; nested
slicing (``federated.method: nested``) is the elastic codec with uniform prefixes of blocks.
``elastic_codec`` is the one place that builds it from a scenario.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.scenario.schema import ModelConfig


@runtime_checkable
class ReceivedTable(Protocol):
    """A decoded payload on a device."""

    config: np.ndarray
    table: torch.Tensor

    def score(self, user_vectors: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ItemCodec(Protocol):
    @property
    def n_items(self) -> int: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    def full_config(self) -> np.ndarray: ...

    def memory_bytes(self, config: np.ndarray) -> int: ...

    def min_bytes(self) -> int: ...

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes: ...

    def decode(self, payload: bytes) -> ReceivedTable: ...


def elastic_codec(model: ModelConfig, popularity: np.ndarray) -> ElasticLayout:
    """The elastic table of a scenario's ``model`` section, groups formed from ``popularity``."""
    groups = make_groups(np.asarray(popularity), model.groups, model.grouping)
    return elastic_codec_of_groups(model, groups)


def elastic_codec_of_groups(model: ModelConfig, group_of_item: np.ndarray) -> ElasticLayout:
    """The elastic table of ``model`` with given item groups (a saved run's)."""
    return ElasticLayout(
        dim=model.dim,
        num_blocks=model.blocks,
        group_of_item=np.asarray(group_of_item, dtype=np.int64),
        min_blocks=model.min_blocks_per_group,
        bytes_per_value=model.bytes_per_value,
        rescale=model.rescale,
    )
