"""Profiles from FedScale's device-capacity pickle (``fleet.systems.fedscale_capacity``): device
d takes the (d mod N)-th client's computation and communication (ascending client id), mapped to
examples per second and Mbit/s as ``fedrule.systems.fedscale_format`` documents; FedScale has no
latency, so ``latency_s`` comes from the tiers (0 where they give none)."""

from __future__ import annotations

from pathlib import Path

from fedrule.systems.context import SystemsContext
from fedrule.systems.fedscale_format import (
    entry_of_device,
    examples_per_second,
    mbps,
    read_capacity,
)
from fedrule.systems.sources.tiers import from_tiers


def build(context: SystemsContext) -> dict:
    settings = context.systems
    capacity = read_capacity(
        Path(str(settings.fedscale_capacity)), "fleet.systems.fedscale_capacity"
    )
    entry = entry_of_device(context.num_devices, len(capacity.client_ids))
    bandwidth = mbps(capacity.communication_kbps[entry])
    return {
        "examples_per_second": examples_per_second(
            capacity.computation_ms[entry], settings.fedscale_augmentation
        ),
        "download_mbps": bandwidth,
        "upload_mbps": bandwidth.copy(),
        **from_tiers(context, ("latency_s",)),
    }
