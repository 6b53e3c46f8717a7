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
from dataclasses import field as _field
from typing import Any, ClassVar

import numpy as np

from fedrule.names import FAULT_PHASES

ARRAYS = "arrays"  # the record of named arrays of a message
SCALARS = "config"  # the record of named scalars of a message

Scalar = int | float | str | bool | list

VALID, TEST = "valid", "test"  # the held-out items a labelling scores (LabelRequest.target)


class Kind(enum.StrEnum):
    """Message kinds, spelled as Flower's message types."""

    COUNT = "query.count"
    TRAIN = "train"
    LABEL = "evaluate.label"
    TEST = "evaluate.test"


KIND_NUMBERS: dict[Kind, int] = {kind: number for number, kind in enumerate(Kind)}
"""Each kind's number in the random streams that decide a message's faults and its loss."""

FAULT_KINDS: dict[str, Kind] = dict(
    zip(FAULT_PHASES, (Kind.TRAIN, Kind.LABEL, Kind.TEST), strict=True)
)
"""The message kind each fault phase of ``faults.phases`` (``fedrule.names.FAULT_PHASES``) hits."""


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


def _reveals(text: str) -> dict[str, str]:
    """A message field's metadata: what it reveals to its receiver (``describe``)."""
    return {"reveals": text}


def _secagg_fields(what: str) -> dict[str, Any]:
    """The fields of a reply under secure aggregation (``privacy.secure_aggregation``; empty
    otherwise): ``fedrule.privacy.secagg.MaskedUpload``, field by field."""
    return {
        "masked": _field(
            default_factory=lambda: np.zeros((0, 0), np.uint64),
            metadata=_reveals(
                f"per surviving device, its {what} plus pairwise and self masks mod 2^64: "
                "uniformly random alone; only the sum over the cohort's survivors is revealed "
                "(secure aggregation), and devices refuse below privacy.min_cohort"
            ),
        ),
        "sa_public_keys": _field(
            default_factory=lambda: np.zeros((0, 32), np.uint8),
            metadata=_reveals("nothing (the devices' fresh X25519 public keys)"),
        ),
        "sa_survived": _field(
            default_factory=lambda: np.zeros(0, bool),
            metadata=_reveals("which of the named devices sent a masked vector (participation)"),
        ),
        "sa_share_index": _field(
            default_factory=lambda: np.zeros((0, 3), np.int64),
            metadata=_reveals("nothing (whose seed each unmasking share is, and its holder)"),
        ),
        "sa_shares": _field(
            default_factory=lambda: np.zeros((0, 16), np.uint8),
            metadata=_reveals(
                "Shamir shares of the survivors' self-mask seeds and the dropped devices' key "
                "seeds: enough to remove the masks from the sum, never one device's mask"
            ),
        ),
    }


def _is_payloads(name: str, value: object) -> bool:
    return name in _PAYLOAD_FIELDS and isinstance(value, tuple)


# ---------------------------------------------------------------------- popularity count
_COUNT_SA = _secagg_fields("training-item histogram")


@dataclass(frozen=True)
class CountRequest(Message):
    """Devices report how often each item occurs in their training data."""

    kind: ClassVar[Kind] = Kind.COUNT
    devices: np.ndarray = _field(
        metadata=_reveals("which devices the server asked (its own choice; no device data)")
    )


@dataclass(frozen=True)
class CountReply(Message):
    kind: ClassVar[Kind] = Kind.COUNT
    counts: np.ndarray = _field(  # per item, summed over the cohort's devices
        metadata=_reveals(
            "the summed training-item histogram of the cohort: one device's exact training "
            "item set when the cohort is one device (empty under secure aggregation)"
        )
    )
    masked: np.ndarray = _COUNT_SA["masked"]
    sa_public_keys: np.ndarray = _COUNT_SA["sa_public_keys"]
    sa_survived: np.ndarray = _COUNT_SA["sa_survived"]
    sa_share_index: np.ndarray = _COUNT_SA["sa_share_index"]
    sa_shares: np.ndarray = _COUNT_SA["sa_shares"]


# ---------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainRequest(Message):
    """A training round: the distinct payloads the cohort receives and which each device gets."""

    kind: ClassVar[Kind] = Kind.TRAIN
    round: int = _field(metadata=_reveals("nothing (the server's round number)"))
    devices: np.ndarray = _field(
        metadata=_reveals("which devices the server sampled (its own choice)")
    )
    payloads: tuple[bytes, ...] = _field(
        metadata=_reveals(
            "nothing about devices (the server's own table, encoded per configuration)"
        )
    )
    payload_of_device: np.ndarray = _field(
        metadata=_reveals("nothing about devices (derived from registered budgets)")
    )
    clip: float = _field(
        default=0.0,
        metadata=_reveals(
            "nothing about devices beyond earlier noised replies (the round's clipping norm C; "
            "under adaptive clipping it follows the noised clip_below of earlier rounds); "
            "0: the scenario's privacy.clip"
        ),
    )


@dataclass(frozen=True)
class TrainReply(Message):
    """The cohort's weighted update sums per touched item row, and its round counts."""

    kind: ClassVar[Kind] = Kind.TRAIN
    rows: np.ndarray = _field(
        metadata=_reveals(
            "the union of the cohort's touched items: one device's positives plus its sampled"
            " negatives when the cohort is one device"
        )
    )
    sum_wdelta: np.ndarray = _field(
        metadata=_reveals(
            "the summed row updates: their signs and directions separate positives from "
            "negatives (singular-vector attack)"
        )
    )
    sum_w: np.ndarray = _field(
        metadata=_reveals(
            "per touched row and block, the summed weights: training-example counts of the "
            "devices that touched it (1 per device under DP)"
        )
    )
    trained: int = _field(
        metadata=_reveals("how many of the named devices trained (participation)")
    )
    unavailable: int = _field(metadata=_reveals("how many of the named devices were unavailable"))
    failed: int = _field(metadata=_reveals("how many of the named devices failed mid-round"))
    late: int = _field(
        metadata=_reveals("how many of the named devices missed the deadline (stragglers)")
    )
    bytes_down: int = _field(
        metadata=_reveals("bytes the cohort downloaded (follows from budgets and availability)")
    )
    bytes_up: int = _field(
        metadata=_reveals(
            "bytes uploaded: the number of touched (row, block) entries, i.e. activity"
        )
    )
    loss_sum: float = _field(
        metadata=_reveals("the cohort's summed training loss (fit of the model to its data)")
    )
    loss_count: float = _field(metadata=_reveals("the cohort's number of local steps (activity)"))
    clip_below: int = _field(
        default=0,
        metadata=_reveals(
            "how many of the cohort's trained devices had an update norm <= the round's clip "
            "before clipping (adaptive clipping; 0 otherwise): one device's bit when the cohort "
            "is one device; the server noises the round's total with sigma_b before using it"
        ),
    )
    finish_s: np.ndarray = _field(
        default_factory=lambda: np.zeros(0),
        metadata=_reveals(
            "per named device, the simulated seconds from the round's start until its upload "
            "arrived (NaN: it sent none; empty without device systems, docs/systems.md): "
            "what any real server observes as each upload's arrival time, even under secure "
            "aggregation; with the payload sizes it bounds the device's examples / speed and "
            "its upload's size (activity)"
        ),
    )


# ---------------------------------------------------------------------- labelling


@dataclass(frozen=True)
class LabelRequest(Message):
    """Rank all items under each candidate configuration on the devices' validation items
    (``target`` ``"test"``: their test items, their validation items excluded from the ranking
    as well)."""

    kind: ClassVar[Kind] = Kind.LABEL
    stamp: int = _field(  # a fresh random stream per labelling
        metadata=_reveals("nothing (a server counter)")
    )
    devices: np.ndarray = _field(
        metadata=_reveals("which devices the server asked (its own choice)")
    )
    payloads: tuple[bytes, ...] = _field(  # the full table (one payload)
        metadata=_reveals("nothing about devices (the server's full table)")
    )
    configs: np.ndarray = _field(  # C x G x B candidate configurations
        metadata=_reveals("nothing about devices (the server's candidates)")
    )
    item_is_head: np.ndarray = _field(  # empty: no head/tail metrics (search.tail_weight 0)
        default_factory=lambda: np.zeros(0, bool),
        metadata=_reveals("nothing about devices (from the aggregated count)"),
    )
    target: str = _field(  # "valid", or "test": eval.every_device's measurement
        default=VALID,
        metadata=_reveals("nothing (which of its held-out items each device scores)"),
    )
    as_dispatched: bool = _field(  # refit per configuration (every_device, verify_per_budget)
        default=False,
        metadata=_reveals("nothing (how each device fits its user vector: the server's choice)"),
    )


_LABEL_SA = _secagg_fields("metric sums per configuration and validation-item counts")


@dataclass(frozen=True)
class LabelReply(Message):
    kind: ClassVar[Kind] = Kind.LABEL
    keys: tuple[str, ...] = _field(metadata=_reveals("nothing (metric names)"))
    sums: np.ndarray = _field(  # C x keys, summed over the cohort's devices
        metadata=_reveals(
            "the cohort's summed validation metrics per configuration: the rank of one "
            "device's validation item under up to C configurations when the cohort is one "
            "device (empty under secure aggregation)"
        )
    )
    counts: np.ndarray = _field(  # per key: devices that contributed
        metadata=_reveals("how many devices had a validation item (empty under secure aggregation)")
    )
    dropped: int = _field(
        metadata=_reveals("how many of the named devices crashed or missed the deadline")
    )
    masked: np.ndarray = _LABEL_SA["masked"]
    sa_public_keys: np.ndarray = _LABEL_SA["sa_public_keys"]
    sa_survived: np.ndarray = _LABEL_SA["sa_survived"]
    sa_share_index: np.ndarray = _LABEL_SA["sa_share_index"]
    sa_shares: np.ndarray = _LABEL_SA["sa_shares"]


# ---------------------------------------------------------------------- dispatch and test
@dataclass(frozen=True)
class TestRequest(Message):
    """Every device receives its searched sub-embedding, checks it against its budget, and tests
    it. ``item_is_head`` (popularity buckets, computed from the aggregated count) lets devices
    report head/tail metrics."""

    __test__ = False  # not a pytest class
    kind: ClassVar[Kind] = Kind.TEST
    devices: np.ndarray = _field(
        metadata=_reveals("which devices the server asked (its own choice)")
    )
    payloads: tuple[bytes, ...] = _field(
        metadata=_reveals("nothing about devices (the searched sub-embeddings)")
    )
    payload_of_device: np.ndarray = _field(
        metadata=_reveals("nothing about devices (derived from registered budgets)")
    )
    item_is_head: np.ndarray = _field(
        metadata=_reveals("nothing about devices (from the aggregated count)")
    )


@dataclass(frozen=True)
class TestReply(Message):
    """The per-device test report: what each device received, accepted and measured."""

    __test__ = False
    kind: ClassVar[Kind] = Kind.TEST
    devices: np.ndarray = _field(metadata=_reveals("which devices answer (echoed)"))
    accepted: np.ndarray = _field(
        metadata=_reveals(
            "per device: whether it accepted its sub-embedding (follows from its budget)"
        )
    )
    bytes_received: np.ndarray = _field(metadata=_reveals("per device: bytes received"))
    evaluated: np.ndarray = _field(metadata=_reveals("per device: whether it holds a test item"))
    keys: tuple[str, ...] = _field(metadata=_reveals("nothing (metric names)"))
    metrics: np.ndarray = _field(  # devices x keys (NaN where refused or not evaluated)
        metadata=_reveals(
            "per device: test metrics, i.e. the rank band of its test item and whether it is "
            "head or tail (the simulator's measurement channel)"
        )
    )
    dropped: int = _field(
        metadata=_reveals("how many of the named devices crashed or missed the deadline")
    )


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


def stamp_of(request: Message) -> int:
    """A training request's round, a labelling request's stamp, else 0: what the random draws
    of a request's faults and loss are keyed by besides its kind."""
    if isinstance(request, TrainRequest):
        return request.round
    if isinstance(request, LabelRequest):
        return request.stamp
    return 0


@dataclass(frozen=True)
class NodeFailure:
    """A request that got no usable reply: the node raised, never answered in time, or the
    message was lost (``lost``)."""

    reason: str
    lost: bool = False


def describe() -> list[dict[str, str]]:
    """Every field of every message: kind, direction, field, and what it reveals to its
    receiver about devices (the threat model's table in docs/privacy.md is generated from it)."""
    rows = []
    for kind in Kind:
        for direction, table in (("request", REQUESTS), ("reply", REPLIES)):
            for field in dataclasses.fields(table[kind]):  # type: ignore[arg-type]
                rows.append(
                    {
                        "kind": kind.value,
                        "direction": direction,
                        "field": field.name,
                        "reveals": field.metadata["reveals"],
                    }
                )
    return rows
