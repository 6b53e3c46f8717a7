"""What a device trains of a compressed table: its parameter rows, and how items embed from them.

Hashing and quotient-remainder tables embed an item as the elementwise product of one or two
parameter rows (``parts``: per factor, each item's row). A device trains the parameter rows
themselves (``fedrule.device.composed_train``), so items that share a row share its update, as
they do in the centralised trainer (``fedrule.model.codecs.train``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedrule.model.elastic import ElasticLayout


@dataclass(frozen=True, eq=False)
class ComposedTable:
    """A decoded parameter table (rows x d) and, per factor, the row of every item."""

    table: torch.Tensor
    parts: tuple[np.ndarray, ...]
    bytes_per_value: int

    @property
    def n_items(self) -> int:
        return int(self.parts[0].size)

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def item_table(self) -> torch.Tensor:
        """Every item's embedding (n x d)."""
        out = self.table[torch.from_numpy(self.parts[0])]
        for part in self.parts[1:]:
            out = out * self.table[torch.from_numpy(part)]
        return out


def plain_layout(n_items: int, dim: int, bytes_per_value: int = 4) -> ElasticLayout:
    """The one-block, one-group layout of a plain item table: how the device-side trainers and
    rankers see a decoded dense table (every item scored, no sub-configurations)."""
    return ElasticLayout(
        dim=dim,
        num_blocks=1,
        group_of_item=np.zeros(n_items, dtype=np.int64),
        bytes_per_value=bytes_per_value,
    )
