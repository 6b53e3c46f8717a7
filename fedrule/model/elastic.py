"""Elastic item embeddings: blocks, popularity groups, configurations, honest memory, payloads.

The item table ``V`` (n x d) is cut along its columns into ``B`` blocks of width ``d/B``. Items
are partitioned into ``G`` groups; a *configuration* is a ``G x B`` boolean mask saying which
blocks each group keeps. Dropped blocks read as zeros.

A device receives a *payload*: a 16-byte header, the mask (1 bit per entry), the item-to-group
map (1, 2 or 4 bytes per item; none when group == item id) and the kept block values, group by
group, items in id order, blocks in order. ``memory_bytes`` is exactly ``len(encode(...))``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from fedrule.errors import BudgetError
from fedrule.model.mf import UNSCORED

HEADER = struct.Struct(
    "<IHHIBBBx"
)  # n_items, dim, num_blocks, num_groups, dtype, flags, min_blocks
_DTYPES = {4: np.float32, 2: np.float16}
_FLAG_IDENTITY = 1
_FLAG_RESCALE = 2


def make_groups(popularity: np.ndarray, num_groups: int, by: str = "mass") -> np.ndarray:
    """Group id per item, most popular first (ties by item index).

    ``by='count'``: groups of (nearly) equal item count. ``by='mass'``: groups holding (nearly)
    equal shares of the interactions; every group keeps at least one item. ``num_groups`` of 0
    or >= n_items gives one group per item, numbered by item id (no map needs to be sent).
    """
    n = popularity.size
    if num_groups <= 0 or num_groups >= n:
        return np.arange(n, dtype=np.int64)
    order = np.lexsort((np.arange(n), -popularity.astype(np.float64)))
    if by == "count":
        cuts = np.round(np.linspace(0, n, num_groups + 1)).astype(np.int64)
    elif by == "mass":
        mass = np.cumsum(popularity[order].astype(np.float64))
        total = mass[-1] if mass[-1] > 0 else 1.0
        targets = total * np.arange(1, num_groups) / num_groups
        inner = np.searchsorted(mass, targets, side="left") + 1
        cuts = np.concatenate([[0], inner, [n]]).astype(np.int64)
    else:
        raise ValueError(f"unknown grouping {by!r}")
    for g in range(1, num_groups):  # strictly increasing cuts: no empty group
        cuts[g] = min(max(cuts[g], cuts[g - 1] + 1), n - (num_groups - g))
    group_in_order = np.searchsorted(cuts, np.arange(n), side="right") - 1
    group_of_item = np.empty(n, dtype=np.int64)
    group_of_item[order] = group_in_order
    return group_of_item


@dataclass(frozen=True, eq=False)
class ElasticLayout:
    """The shape of the configuration space and the memory cost of each configuration."""

    dim: int
    num_blocks: int
    group_of_item: np.ndarray
    min_blocks: int = 1
    bytes_per_value: int = 4
    rescale: bool = False

    def __post_init__(self) -> None:
        if self.dim % self.num_blocks:
            raise ValueError(f"dim {self.dim} not divisible by num_blocks {self.num_blocks}")
        if self.bytes_per_value not in _DTYPES:
            raise ValueError("bytes_per_value must be 4 or 2")

    @property
    def n_items(self) -> int:
        return int(self.group_of_item.size)

    @property
    def block_dim(self) -> int:
        return self.dim // self.num_blocks

    @cached_property
    def num_groups(self) -> int:
        return int(self.group_of_item.max()) + 1 if self.n_items else 0

    @cached_property
    def group_sizes(self) -> np.ndarray:
        return np.bincount(self.group_of_item, minlength=self.num_groups).astype(np.int64)

    @cached_property
    def size_popularity(self) -> np.ndarray:
        """Each group's mean item popularity as the layout alone tells it, relative to the most
        popular group (in (0, 1]): groups hold equal interaction mass, so it is in inverse
        proportion to the group's size (an empty group counts as the most popular)."""
        sizes = self.group_sizes.astype(np.float64)
        if not (sizes > 0).any():
            return np.ones_like(sizes)
        return np.divide(sizes[sizes > 0].min(), sizes, out=np.ones_like(sizes), where=sizes > 0)

    @cached_property
    def identity_groups(self) -> bool:
        return bool(np.array_equal(self.group_of_item, np.arange(self.n_items)))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_groups, self.num_blocks)

    # ---------------------------------------------------------------- memory
    @property
    def full_table_bytes(self) -> int:
        """Bytes of the plain full table (n x d values), the reference for budget shares."""
        return self.n_items * self.dim * self.bytes_per_value

    @cached_property
    def map_bytes_per_item(self) -> int:
        if self.identity_groups:
            return 0
        return 1 if self.num_groups <= 256 else 2 if self.num_groups <= 65536 else 4

    @cached_property
    def metadata_bytes(self) -> int:
        """Header + bit mask + item-to-group map: what a device needs to decode the values."""
        mask_bytes = (self.num_groups * self.num_blocks + 7) // 8
        return HEADER.size + mask_bytes + self.n_items * self.map_bytes_per_item

    @cached_property
    def bytes_per_block(self) -> np.ndarray:
        """Bytes one block costs in each group (items in the group x block width x value size)."""
        return self.group_sizes * self.block_dim * self.bytes_per_value

    def memory_bytes(self, config: np.ndarray) -> int:
        """Exact payload size of ``config`` (== ``len(encode(table, config))``)."""
        return self.metadata_bytes + int(config.sum(axis=1) @ self.bytes_per_block)

    def memory_bytes_many(self, configs: np.ndarray) -> np.ndarray:
        """``memory_bytes`` of a stack of configurations (C x G x B)."""
        return self.metadata_bytes + configs.sum(axis=2) @ self.bytes_per_block

    def min_bytes(self) -> int:
        """The smallest payload any valid configuration has."""
        return self.metadata_bytes + int(self.min_blocks * self.bytes_per_block.sum())

    def check_budget(self, budget_bytes: int, what: str = "budget") -> None:
        if budget_bytes < self.min_bytes():
            raise BudgetError(
                f"{what} of {budget_bytes} bytes is below the smallest configuration "
                f"({self.min_bytes()} bytes: {self.min_blocks} block(s) per group + metadata)"
            )

    # ---------------------------------------------------------------- configurations
    def full_config(self) -> np.ndarray:
        return np.ones(self.shape, dtype=bool)

    def is_valid(self, config: np.ndarray) -> bool:
        return config.shape == self.shape and bool((config.sum(axis=1) >= self.min_blocks).all())

    def uniform_config(self, blocks: int) -> np.ndarray:
        """Every group keeps its first ``blocks`` blocks."""
        config = np.zeros(self.shape, dtype=bool)
        config[:, :blocks] = True
        return config

    def random_config(
        self, rng: np.random.Generator, counts: np.ndarray | None = None
    ) -> np.ndarray:
        """Each group keeps a random subset of blocks (sizes uniform in [min, B] unless given)."""
        g, b = self.shape
        if counts is None:
            counts = rng.integers(self.min_blocks, b + 1, size=g)
        ranks = np.argsort(rng.random((g, b)), axis=1).argsort(axis=1)
        return ranks < np.asarray(counts)[:, None]

    def group_weights(self, config: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per group and block: 1 if kept (or B/|kept| with rescaling), else 0. Shape G x B
        (or C x G x B for a stack of configurations)."""
        mask = torch.as_tensor(np.asarray(config), dtype=torch.float32)
        if self.rescale:
            kept = mask.sum(dim=-1, keepdim=True)
            mask = mask * self.num_blocks / kept.clamp(min=1)
        return mask

    def item_weights(self, config: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``group_weights`` expanded to items: shape n x B (or C x n x B)."""
        return self.group_weights(config)[..., self.group_index, :]

    @cached_property
    def group_index(self) -> torch.Tensor:
        return torch.as_tensor(self.group_of_item)

    # ---------------------------------------------------------------- payloads
    @cached_property
    def _item_order(self) -> np.ndarray:
        return np.lexsort((np.arange(self.n_items), self.group_of_item))

    def encode(self, table: torch.Tensor | np.ndarray, config: np.ndarray) -> bytes:
        """The sub-embedding payload a device receives for ``config`` (only kept blocks)."""
        values = np.asarray(table, dtype=np.float32).reshape(
            self.n_items, self.num_blocks, self.block_dim
        )
        order = self._item_order
        kept = config[self.group_of_item[order]]
        body = values[order][kept].astype(_DTYPES[self.bytes_per_value]).tobytes()
        flags = (_FLAG_IDENTITY if self.identity_groups else 0) | (
            _FLAG_RESCALE if self.rescale else 0
        )
        header = HEADER.pack(
            self.n_items,
            self.dim,
            self.num_blocks,
            self.num_groups,
            self.bytes_per_value,
            flags,
            self.min_blocks,
        )
        mask = np.packbits(config.astype(bool).ravel()).tobytes()
        if self.map_bytes_per_item:
            dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}[self.map_bytes_per_item]
            group_map = self.group_of_item.astype(dtype).tobytes()
        else:
            group_map = b""
        return header + mask + group_map + body

    def decode(self, payload: bytes) -> SubEmbedding:
        """What a device rebuilds from a payload (``ItemCodec``); the layout travels in it."""
        return decode(payload)


@dataclass(frozen=True, eq=False)
class SubEmbedding:
    """A decoded payload: what a device can score with."""

    layout: ElasticLayout
    config: np.ndarray
    table: torch.Tensor  # n x d, dropped blocks zero (rescaling not yet applied)

    @cached_property
    def scored_items(self) -> torch.Tensor:
        """Bool per item: does it keep at least one block?"""
        return torch.as_tensor(self.config.sum(axis=1)[self.layout.group_of_item] > 0)

    @cached_property
    def effective_table(self) -> torch.Tensor:
        if not self.layout.rescale:
            return self.table
        weights = self.layout.item_weights(self.config)
        return self.table * weights.repeat_interleave(self.layout.block_dim, dim=1)

    def score(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """Scores of all items for each user vector (u x d); items without blocks: UNSCORED."""
        scores = user_vectors @ self.effective_table.T
        return scores.masked_fill(~self.scored_items, UNSCORED)

    def restrict(self, config: np.ndarray) -> SubEmbedding:
        """The sub-embedding ``config`` cuts from this one (its other blocks zeroed): what a
        device decodes from the payload of ``config`` made from this table."""
        kept = np.repeat(config[self.layout.group_of_item], self.layout.block_dim, axis=1)
        return SubEmbedding(self.layout, config, self.table * torch.from_numpy(kept))


def decode(payload: bytes) -> SubEmbedding:
    """Rebuild a scorer from a payload made by ``ElasticLayout.encode``."""
    n_items, dim, num_blocks, num_groups, bpv, flags, min_blocks = HEADER.unpack_from(payload, 0)
    offset = HEADER.size
    mask_bytes = (num_groups * num_blocks + 7) // 8
    bits = np.unpackbits(np.frombuffer(payload, np.uint8, mask_bytes, offset))
    config = bits[: num_groups * num_blocks].reshape(num_groups, num_blocks).astype(bool)
    offset += mask_bytes
    if flags & _FLAG_IDENTITY:
        group_of_item = np.arange(n_items, dtype=np.int64)
    else:
        width = 1 if num_groups <= 256 else 2 if num_groups <= 65536 else 4
        dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32}[width]
        group_of_item = np.frombuffer(payload, dtype, n_items, offset).astype(np.int64)
        offset += n_items * width
    layout = ElasticLayout(
        dim=dim,
        num_blocks=num_blocks,
        group_of_item=group_of_item,
        min_blocks=min_blocks,
        bytes_per_value=bpv,
        rescale=bool(flags & _FLAG_RESCALE),
    )
    body = np.frombuffer(payload, _DTYPES[bpv], offset=offset).astype(np.float32)
    order = layout._item_order
    kept = config[group_of_item[order]]
    if body.size != int(kept.sum()) * layout.block_dim:
        raise ValueError("payload size does not match its header and mask")
    values = np.zeros((n_items, num_blocks, layout.block_dim), dtype=np.float32)
    in_order = values[order]
    in_order[kept] = body.reshape(-1, layout.block_dim)
    values[order] = in_order
    return SubEmbedding(layout, config, torch.from_numpy(values.reshape(n_items, dim)))
