"""FedScale's behaviour trace as availability: device d takes the windows of the (d mod N)-th
client (ascending id), [active[i], inactive[i]) repeating every finish_time seconds
(``fedrule.systems.fedscale_format``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedrule.systems.availability.intervals import Intervals
from fedrule.systems.context import SystemsContext
from fedrule.systems.fedscale_format import entry_of_device, read_behaviour


def build(context: SystemsContext) -> Intervals:
    key = "fleet.systems.availability.file"
    trace = read_behaviour(Path(str(context.systems.availability.file)), key)
    entry = entry_of_device(context.num_devices, len(trace.client_ids))
    counts = np.array([trace.active_s[e].size for e in entry.tolist()], dtype=np.int64)
    devices = np.repeat(np.arange(context.num_devices), counts)
    starts = np.concatenate([trace.active_s[e] for e in entry.tolist()] or [np.zeros(0)])
    ends = np.concatenate([trace.inactive_s[e] for e in entry.tolist()] or [np.zeros(0)])
    return Intervals.from_rows(
        context.num_devices, devices, starts, ends, period_s=trace.finish_time_s[entry]
    )
