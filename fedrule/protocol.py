"""The fleet protocol: every message kind and every field a message carries, in one place.

The server addresses *devices*; a transport packs them into cohorts, one request per cohort, and
each reply covers the request's devices. Requests carry device ids, encoded payloads and the
server's own choices — never device data. Replies carry only what the server needs: sums over
the cohort's devices, except where a per-device answer is the product (``TestReply``: the
per-device test report).

A message travels as ``Wire``: named numpy arrays plus named scalars. The Flower transport maps
that onto an ``ArrayRecord`` and a ``ConfigRecord`` (``fedrule.transports.flower.records``); the
in-process transport passes the dataclasses themselves. No record key or message-kind string
exists outside this module.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

ARRAYS = "arrays"  # the record of named arrays of a message
SCALARS = "config"  # the record of named scalars of a message

Scalar = int | float | str | bool | list


class Kind(enum.StrEnum):
    """Message kinds, spelled as Flower's message types."""

    COUNT = "query.count"
    TRAIN = "train"
    LABEL = "evaluate.label"
    TEST = "evaluate.test"


@dataclass(frozen=True)
class Wire:
    """A message's content as named arrays and named scalars."""

    arrays: dict[str, np.ndarray]
    scalars: dict[str, Scalar]


class Message:
    """Base of every request and reply: generic conversion to and from ``Wire``.

    Fields holding numpy arrays travel as arrays; a ``tuple[bytes, ...]`` field (payloads)
    travels as one uint8 array per payload; every other field is a scalar.
    """

    kind: ClassVar[Kind]

    def to_wire(self) -> Wire:
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Scalar] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                arrays[field.name] = value
            elif _is_payloads(field.name, value):
                scalars[f"{field.name}.count"] = len(value)
                for i, blob in enumerate(value):
                    arrays[f"{field.name}.{i}"] = np.frombuffer(blob, dtype=np.uint8)
            else:
                scalars[field.name] = list(value) if isinstance(value, tuple) else value
        return Wire(arrays, scalars)

    @classmethod
    def from_wire(cls, wire: Wire) -> Any:
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            name = field.name
            if name in wire.arrays:
                values[name] = wire.arrays[name]
            elif f"{name}.count" in wire.scalars:
                count = int(wire.scalars[f"{name}.count"])
                values[name] = tuple(wire.arrays[f"{name}.{i}"].tobytes() for i in range(count))
            elif name in wire.scalars:
                value = wire.scalars[name]
                values[name] = tuple(value) if isinstance(value, list) else value
            else:
                raise ValueError(f"{cls.__name__} message lacks its field {name!r}")
        return cls(**values)


_PAYLOAD_FIELDS = {"payloads"}


def _is_payloads(name: str, value: object) -> bool:
    return name in _PAYLOAD_FIELDS and isinstance(value, tuple)


# ---------------------------------------------------------------------- popularity count
@dataclass(frozen=True)
class CountRequest(Message):
    """Devices report how often each item occurs in their training data."""

    kind: ClassVar[Kind] = Kind.COUNT
    devices: np.ndarray


@dataclass(frozen=True)
class CountReply(Message):
    kind: ClassVar[Kind] = Kind.COUNT
    counts: np.ndarray  # per item, summed over the cohort's devices


# ---------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainRequest(Message):
    """A training round: the distinct payloads the cohort receives and which each device gets."""

    kind: ClassVar[Kind] = Kind.TRAIN
    round: int
    devices: np.ndarray
    payloads: tuple[bytes, ...]
    payload_of_device: np.ndarray


@dataclass(frozen=True)
class TrainReply(Message):
    """The cohort's weighted update sums per touched item row, and its round counts."""

    kind: ClassVar[Kind] = Kind.TRAIN
    rows: np.ndarray
    sum_wdelta: np.ndarray
    sum_w: np.ndarray
    trained: int
    unavailable: int
    failed: int
    bytes_down: int
    bytes_up: int
    loss_sum: float
    loss_count: float


# ---------------------------------------------------------------------- labelling
@dataclass(frozen=True)
class LabelRequest(Message):
    """Rank all items under each candidate configuration on the devices' validation items."""

    kind: ClassVar[Kind] = Kind.LABEL
    stamp: int  # a fresh random stream per labelling
    devices: np.ndarray
    payloads: tuple[bytes, ...]  # the full table (one payload)
    configs: np.ndarray  # C x G x B candidate configurations


@dataclass(frozen=True)
class LabelReply(Message):
    kind: ClassVar[Kind] = Kind.LABEL
    keys: tuple[str, ...]
    sums: np.ndarray  # C x keys, summed over the cohort's devices
    counts: np.ndarray  # per key: devices that contributed


# ---------------------------------------------------------------------- dispatch and test
@dataclass(frozen=True)
class TestRequest(Message):
    """Every device receives its searched sub-embedding, checks it against its budget, and tests
    it. ``item_is_head`` (popularity buckets, computed from the aggregated count) lets devices
    report head/tail metrics."""

    __test__ = False  # not a pytest class
    kind: ClassVar[Kind] = Kind.TEST
    devices: np.ndarray
    payloads: tuple[bytes, ...]
    payload_of_device: np.ndarray
    item_is_head: np.ndarray


@dataclass(frozen=True)
class TestReply(Message):
    """The per-device test report: what each device received, accepted and measured."""

    __test__ = False
    kind: ClassVar[Kind] = Kind.TEST
    devices: np.ndarray
    accepted: np.ndarray
    bytes_received: np.ndarray
    evaluated: np.ndarray
    keys: tuple[str, ...]
    metrics: np.ndarray  # devices x keys (NaN where refused or not evaluated)


REQUESTS: dict[Kind, type[Message]] = {
    Kind.COUNT: CountRequest,
    Kind.TRAIN: TrainRequest,
    Kind.LABEL: LabelRequest,
    Kind.TEST: TestRequest,
}
REPLIES: dict[Kind, type[Message]] = {
    Kind.COUNT: CountReply,
    Kind.TRAIN: TrainReply,
    Kind.LABEL: LabelReply,
    Kind.TEST: TestReply,
}


@dataclass(frozen=True)
class NodeFailure:
    """A request that got no usable reply: the node raised, or never answered in time."""

    reason: str


def describe() -> list[dict[str, str]]:
    """Every field of every message: kind, direction, field, and what it carries (for docs)."""
    rows = []
    for direction, table in (("request", REQUESTS), ("reply", REPLIES)):
        for kind, cls in table.items():
            for field in dataclasses.fields(cls):  # type: ignore[arg-type]
                rows.append({"kind": kind.value, "direction": direction, "field": field.name})
    return rows
