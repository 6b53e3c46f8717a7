"""Plain, picklable settings handed to the Flower apps (run_simulation has no run config)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedrule.device.local_train import LocalSpec


@dataclass(frozen=True)
class ModelShape:
    n_items: int
    dim: int
    num_blocks: int
    min_blocks: int
    bytes_per_value: int
    rescale: bool
    init_std: float


@dataclass(frozen=True)
class NodeSettings:
    """What every node knows: where its devices' data lives and how devices compute."""

    store_path: str
    seed: int
    num_devices: int
    devices_per_node: int
    shape: ModelShape
    local: LocalSpec
    ks: tuple[int, ...]
    failure_rate: float
    threads: int
    personal: LocalSpec | None = None  # on-device fitting of the user vector before evaluating

    def devices_of(self, partition: int) -> np.ndarray:
        start = partition * self.devices_per_node
        return np.arange(start, min(start + self.devices_per_node, self.num_devices))


# Random streams of a device (with the scenario seed and the device number).
STREAM_USER_INIT = 1
STREAM_AVAILABILITY = 2
STREAM_TRAIN = 3
STREAM_PERSONALIZE = 4

# Device status in a round.
TRAINED, UNAVAILABLE, FAILED = 0, 1, 2
