"""Conversion between the protocol's wire form and Flower records (the only place that knows
both)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedrule.protocol import ARRAYS, SCALARS, Wire


def to_records(wire: Wire) -> RecordDict:
    arrays = ArrayRecord({k: Array(np.asarray(v)) for k, v in wire.arrays.items()})
    return RecordDict({ARRAYS: arrays, SCALARS: ConfigRecord(dict(wire.scalars))})


def from_records(content: RecordDict) -> Wire:
    arrays = content[ARRAYS] if ARRAYS in content else ArrayRecord()
    scalars = content[SCALARS] if SCALARS in content else ConfigRecord()
    return Wire({k: arrays[k].numpy() for k in arrays}, dict(scalars))
