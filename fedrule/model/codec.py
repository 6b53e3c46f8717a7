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

A device knows its run's format by the name it is registered under (``fedrule.registry.CODECS``,
a method's ``codec_kind``) and decodes what it receives with ``decode_payload``; hashing and QR
devices train the parameter rows (``decode_trainable``). Each format's module registers its
``Decoder`` (``fedrule.model.codecs.decoder``), the elastic one here; a package adds a format
through an entry point of the group ``fedrule.codecs``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from fedrule.model.codecs.composed import ComposedTable, plain_layout
from fedrule.model.codecs.decoder import Decoder, ReceivedTable, decoder_of, register_codec
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.model.elastic import decode as decode_elastic
from fedrule.scenario.schema import ModelConfig


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


register_codec("elastic", Decoder(decode_elastic))


def decode_payload(kind: str, payload: bytes) -> ReceivedTable:
    """A device's scorer from a payload of the run's format ``kind``."""
    return decoder_of(kind).decode(payload)


def decode_trainable(kind: str, payload: bytes) -> ComposedTable:
    """The parameter rows a device trains, of a format of shared rows (hashing, qr)."""
    trainable = decoder_of(kind).decode_trainable
    if trainable is None:
        raise ValueError(f"{kind} payloads hold no trainable parameter rows")
    return trainable(payload)


def composed(kind: str) -> bool:
    """Do devices of this format train parameter rows (hashing, qr: rows that items share)?"""
    return decoder_of(kind).decode_trainable is not None


def layout_of(received: ReceivedTable) -> ElasticLayout:
    """How device-side rankers and trainers see a decoded table: the elastic payload's layout,
    else one block and one group over the decoded item table."""
    layout = getattr(received, "layout", None)
    if isinstance(layout, ElasticLayout):
        return layout
    n_items, dim = received.table.shape
    return plain_layout(n_items, dim)


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
