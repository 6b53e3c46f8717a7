"""The Flower ClientApp: a node hosts a cohort of devices and runs them on its worker.

Handlers are module-level functions (pickled by reference into Ray workers, so the device store
is loaded once per worker process); the app built by ``build_client_app`` only closes over the
picklable ``NodeSettings``. Message types:

* ``query``          hello: which partition (cohort) is this node?
* ``query.count``    the summed training item counts of the node's devices
* ``train``          local supernet training of the listed devices; weighted update sums back
* ``evaluate.label`` validation metric sums of candidate configurations
* ``evaluate.test``  dispatched sub-embeddings: every device checks, decodes, tests and reports
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedrule.device.evaluate import label_on_devices, personalize, test_dispatched
from fedrule.device.local_train import train_cohort
from fedrule.device.store import load_device_store
from fedrule.federated.records import from_record, to_record
from fedrule.federated.settings import (
    FAILED,
    STREAM_AVAILABILITY,
    STREAM_PERSONALIZE,
    STREAM_TRAIN,
    STREAM_USER_INIT,
    TRAINED,
    UNAVAILABLE,
    NodeSettings,
)
from fedrule.fleet import device_rng
from fedrule.model.elastic import ElasticLayout, SubEmbedding, decode

ERROR_CODE = 100  # a fedrule device-side error (the reason is one line)
_STATE_KEY = "fedrule"
_THREADS: list[int] = []


def _setup_worker(settings: NodeSettings) -> None:
    if [settings.threads] != _THREADS:
        torch.set_num_threads(settings.threads)
        _THREADS[:] = [settings.threads]


def _partition(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _node_devices(settings: NodeSettings, context: Context, requested: np.ndarray) -> np.ndarray:
    mine = settings.devices_of(_partition(context))
    if requested.size and not np.isin(requested, mine).all():
        raise ValueError("message names devices this node does not host")
    return requested


def _user_vectors(settings: NodeSettings, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """(devices, user vectors) of the node, kept in the node state across rounds."""
    devices = settings.devices_of(_partition(context))
    if _STATE_KEY in context.state:
        return devices, context.state[_STATE_KEY]["users"].numpy()
    dim, std = settings.shape.dim, settings.shape.init_std
    vecs = np.stack(
        [device_rng(settings.seed, int(d), STREAM_USER_INIT).normal(0, std, dim) for d in devices]
    ).astype(np.float32)
    return devices, vecs


def _save_users(context: Context, vecs: np.ndarray) -> None:
    context.state[_STATE_KEY] = to_record({"users": vecs})


def _layout(settings: NodeSettings, group_of_item: np.ndarray) -> ElasticLayout:
    s = settings.shape
    return ElasticLayout(
        dim=s.dim,
        num_blocks=s.num_blocks,
        group_of_item=group_of_item.astype(np.int64),
        min_blocks=s.min_blocks,
        bytes_per_value=s.bytes_per_value,
        rescale=s.rescale,
    )


def handle_hello(settings: NodeSettings, msg: Message, context: Context) -> RecordDict:
    devices = settings.devices_of(_partition(context))
    return RecordDict(
        {"info": ConfigRecord({"partition": _partition(context), "devices": len(devices)})}
    )


def handle_count(settings: NodeSettings, msg: Message, context: Context) -> RecordDict:
    store = load_device_store(settings.store_path)
    cohort = store.cohort(settings.devices_of(_partition(context)))
    counts = np.bincount(cohort.train.items, minlength=store.n_items).astype(np.int64)
    return RecordDict({"arrays": to_record({"counts": counts})})


def _payloads(arrays: dict[str, np.ndarray]) -> tuple[list[SubEmbedding], np.ndarray]:
    """The distinct payloads of a message, decoded (each device decodes the bytes it got)."""
    count = int(arrays["payload_of_device"].max()) + 1 if arrays["payload_of_device"].size else 0
    raw = [arrays[f"payload_{i}"].tobytes() for i in range(count)]
    return [decode(p) for p in raw], np.array([len(p) for p in raw], dtype=np.int64)


def _personal_rngs(settings: NodeSettings, devices: np.ndarray, stamp: int) -> list:
    return [device_rng(settings.seed, int(d), stamp, STREAM_PERSONALIZE) for d in devices]


def handle_train(settings: NodeSettings, msg: Message, context: Context) -> RecordDict:
    arrays = from_record(msg.content["arrays"])
    round_number = int(msg.content["config"]["round"])
    store = load_device_store(settings.store_path)
    devices = _node_devices(settings, context, arrays["devices"].astype(np.int64))
    node_devices, users = _user_vectors(settings, context)
    position = np.searchsorted(node_devices, devices)
    status = np.full(devices.size, TRAINED, dtype=np.int8)
    for k, device in enumerate(devices):
        rng = device_rng(settings.seed, int(device), round_number, STREAM_AVAILABILITY)
        if rng.random() >= store.availability[device]:
            status[k] = UNAVAILABLE
        elif rng.random() < settings.failure_rate:
            status[k] = FAILED
    active = np.flatnonzero(status == TRAINED)
    subs, _ = _payloads(arrays)
    payload_of_device = arrays["payload_of_device"].astype(np.int64)[active]
    held = np.stack([subs[p].config for p in payload_of_device]) if active.size else None
    allowed = None if held is None or held.all() else held
    update, new_users = train_cohort(
        torch.stack([sub.table for sub in subs]),
        torch.from_numpy(users[position[active]]),
        store.cohort(devices[active]).train,
        allowed,
        _layout(settings, subs[0].layout.group_of_item),
        settings.local,
        [device_rng(settings.seed, int(d), round_number, STREAM_TRAIN) for d in devices[active]],
        table_of_device=payload_of_device,
    )
    users = users.copy()
    users[position[active]] = new_users.numpy()
    _save_users(context, users)
    bytes_up = np.array([update.bytes_up], dtype=np.int64)
    out = {
        "devices": devices,
        "rows": update.rows,
        "sum_wdelta": update.sum_wdelta,
        "sum_w": update.sum_w,
        "status": status,
        "bytes_up": bytes_up,
    }
    metrics = MetricRecord({"loss_sum": update.loss_sum, "loss_count": update.loss_count})
    return RecordDict({"arrays": to_record(out), "metrics": metrics})


def handle_label(settings: NodeSettings, msg: Message, context: Context) -> RecordDict:
    """Devices fit their user vector to the received table, then rank all items under every
    candidate configuration and return summed validation metrics."""
    arrays = from_record(msg.content["arrays"])
    stamp = int(msg.content["config"]["stamp"])
    store = load_device_store(settings.store_path)
    devices = _node_devices(settings, context, arrays["devices"].astype(np.int64))
    node_devices, users = _user_vectors(settings, context)
    position = np.searchsorted(node_devices, devices)
    subs, _ = _payloads(arrays)
    layout = _layout(settings, subs[0].layout.group_of_item)
    cohort = store.cohort(devices)
    fitted = personalize(
        torch.from_numpy(users[position]),
        subs[0],
        layout,
        cohort,
        settings.personal,
        _personal_rngs(settings, devices, stamp),
    )
    sums = label_on_devices(
        fitted, subs[0].table, layout, arrays["configs"].astype(bool), cohort, list(settings.ks)
    )
    keys = sorted(sums.sums)
    matrix, counts = sums.to_arrays(keys)
    config = ConfigRecord({"keys": keys})
    return RecordDict({"arrays": to_record({"sums": matrix, "counts": counts}), "config": config})


def handle_test(settings: NodeSettings, msg: Message, context: Context) -> RecordDict:
    arrays = from_record(msg.content["arrays"])
    store = load_device_store(settings.store_path)
    devices = _node_devices(settings, context, arrays["devices"].astype(np.int64))
    node_devices, users = _user_vectors(settings, context)
    position = np.searchsorted(node_devices, devices)
    subs, sizes = _payloads(arrays)
    head = arrays.get("item_is_head")
    report = test_dispatched(
        subs,
        sizes,
        arrays["payload_of_device"].astype(np.int64),
        store.budget_bytes[devices],
        torch.from_numpy(users[position]),
        store.cohort(devices),
        lambda sub: _layout(settings, sub.layout.group_of_item),
        list(settings.ks),
        item_is_head=None if head is None else torch.from_numpy(head.astype(bool)),
        personal=settings.personal,
        rngs=_personal_rngs(settings, devices, 0),
    )
    users = users.copy()
    users[position] = report.user_vecs.numpy()
    _save_users(context, users)
    keys = list(report.metrics)
    out = {
        "devices": devices,
        "accepted": report.accepted,
        "bytes_received": report.bytes_received,
        "evaluated": report.evaluated,
        "metrics": np.stack([report.metrics[k] for k in keys], axis=1),
    }
    return RecordDict({"arrays": to_record(out), "config": ConfigRecord({"keys": keys})})


Handler = Callable[[NodeSettings, Message, Context], RecordDict]


def _reply(handler: Handler, settings: NodeSettings, msg: Message, context: Context) -> Message:
    """Run a handler; a failure becomes a one-line error reply (the round goes on)."""
    try:
        _setup_worker(settings)
        return Message(handler(settings, msg, context), reply_to=msg)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return Message(Error(code=ERROR_CODE, reason=reason), reply_to=msg)


def build_client_app(settings: NodeSettings) -> ClientApp:
    app = ClientApp()

    @app.query()
    def hello(msg: Message, context: Context) -> Message:
        return _reply(handle_hello, settings, msg, context)

    @app.query("count")
    def count(msg: Message, context: Context) -> Message:
        return _reply(handle_count, settings, msg, context)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return _reply(handle_train, settings, msg, context)

    @app.evaluate("label")
    def label(msg: Message, context: Context) -> Message:
        return _reply(handle_label, settings, msg, context)

    @app.evaluate("test")
    def test(msg: Message, context: Context) -> Message:
        return _reply(handle_test, settings, msg, context)

    return app
