"""What devices compute for each message, batched over the cohort a request names.

A ``DeviceHost`` runs in any worker: it reads the named devices' data from the device data store
and their state (user vectors) from the device state store, runs them as one batched tensor
program that is exactly what each device would compute alone, writes their state back, and
answers with the protocol's reply. It never sees another cohort and holds no per-node state, so
any node can simulate any device, and results do not depend on packing or workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from fedrule.device import faults as fault
from fedrule.device.cohort import CohortData, Rows
from fedrule.device.composed_train import train_composed_cohort
from fedrule.device.evaluate import (
    label_on_devices,
    personalize,
    test_configs_on_devices,
    test_dispatched,
)
from fedrule.device.faults import DeviceFaults
from fedrule.device.local_spec import LocalSpec
from fedrule.device.local_train import train_cohort
from fedrule.device.state import DeviceStateStore
from fedrule.device.store import DeviceStore, load_device_store
from fedrule.device.update import CohortUpdate, UpdatePipeline
from fedrule.fleet import device_rng
from fedrule.metrics import ConfigSums, metric_keys
from fedrule.model.codec import composed, decode_payload, decode_trainable, layout_of
from fedrule.model.schedule import LrSchedule
from fedrule.privacy import secagg
from fedrule.privacy.mechanisms import bounded_items
from fedrule.protocol import (
    CountReply,
    CountRequest,
    Kind,
    LabelReply,
    LabelRequest,
    Message,
    TestReply,
    TestRequest,
    TrainReply,
    TrainRequest,
)
from fedrule.seeds import STREAM_AVAILABILITY, STREAM_COUNT, STREAM_PERSONALIZE, STREAM_TRAIN

TRAINED, UNAVAILABLE, FAILED, LATE = 0, 1, 2, 3  # a device's status in a round


@dataclass(frozen=True)
class HostSettings:
    """What every worker knows: where the devices' data and state live, and how devices
    compute. Plain and picklable (Flower's simulation has no run config)."""

    store_dir: str
    seed: int
    local: LocalSpec
    ks: tuple[int, ...]
    failure_rate: float
    threads: int
    personal: LocalSpec | None = None  # on-device fitting of the user vector before evaluating
    pipeline: UpdatePipeline = field(default_factory=UpdatePipeline)
    faults: DeviceFaults = field(default_factory=DeviceFaults)
    codec: str = "elastic"  # the run's payload format, a name in ``fedrule.registry.CODECS``
    schedule: LrSchedule = field(default_factory=LrSchedule)  # local_lr over the rounds


class DeviceHost:
    """Answers requests for cohorts of devices (any devices of the fleet)."""

    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.state = DeviceStateStore(settings.store_dir)

    @property
    def data(self) -> DeviceStore:
        return load_device_store(self.settings.store_dir)

    def handle(self, request: Message) -> Message:
        handlers = {
            Kind.COUNT: self.count,
            Kind.TRAIN: self.train,
            Kind.LABEL: self.label,
            Kind.TEST: self.test,
        }
        return handlers[request.kind](request)

    def _survivors(self, devices: np.ndarray, kind: Kind, stamp: int) -> np.ndarray:
        """Per device: does it neither crash nor miss the deadline in this request?"""
        return self.settings.faults.fates(self.settings.seed, devices, kind, stamp) == fault.OK

    def _devices(self, devices: np.ndarray) -> np.ndarray:
        devices = np.asarray(devices, dtype=np.int64)
        if devices.size and (devices.min() < 0 or devices.max() >= self.data.num_devices):
            raise ValueError("a message names a device that is not in the fleet")
        if np.unique(devices).size != devices.size:
            raise ValueError("a message names a device twice")
        return devices

    # ------------------------------------------------------------------ popularity
    def count(self, request: CountRequest) -> CountReply:
        store = self.data
        devices = self._devices(request.devices)
        cohort = store.cohort(devices)
        secure = self.settings.pipeline.secure
        owner, items = self._reported_items(devices, cohort.train)
        if secure is None:
            counts = np.bincount(items, minlength=store.n_items).astype(np.int64)
            return CountReply(counts=counts)
        # secure aggregation: each device masks its own histogram; only the sum is revealed
        own = np.zeros((cohort.size, store.n_items), dtype=np.int64)
        np.add.at(own, (owner, items), 1)
        upload = secagg.mask_cohort(secagg.encode_ints(own), np.ones(cohort.size, bool), secure)
        return CountReply(counts=np.zeros(0, np.int64), **upload.reply_fields())

    def _reported_items(self, devices: np.ndarray, train: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(cohort position, item) of what each device reports: its training items, or under
        the count's DP noise at most ``count_items`` distinct ones (its own stream)."""
        limit = self.settings.pipeline.count_items
        if limit <= 0:
            return train.pairs()
        parts = [
            bounded_items(train.of(k), limit, device_rng(self.settings.seed, int(d), STREAM_COUNT))
            for k, d in enumerate(devices)
        ]
        owner = np.repeat(np.arange(len(parts)), [p.size for p in parts])
        items = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return owner, items.astype(np.int64)

    # ------------------------------------------------------------------ training
    def _status(self, devices: np.ndarray, round_number: int) -> np.ndarray:
        """Each device decides from its own stream whether it is available and survives."""
        s, availability = self.settings, self.data.availability
        status = np.full(devices.size, TRAINED, dtype=np.int8)
        for k, device in enumerate(devices):
            rng = device_rng(s.seed, int(device), round_number, STREAM_AVAILABILITY)
            if rng.random() >= availability[device]:
                status[k] = UNAVAILABLE
            elif rng.random() < s.failure_rate:
                status[k] = FAILED
        fate = s.faults.fates(s.seed, devices, Kind.TRAIN, round_number)
        status[(status == TRAINED) & (fate == fault.CRASHED)] = FAILED
        status[(status == TRAINED) & (fate == fault.LATE)] = LATE
        return status

    def _local(self, round_number: int) -> LocalSpec:
        """How devices train in this round (the scheduled learning rate)."""
        local = self.settings.local
        return replace(local, lr=local.lr * self.settings.schedule.factor(round_number))

    def _decode(self, payloads: tuple[bytes, ...]) -> list:
        return [decode_payload(self.settings.codec, p) for p in payloads]

    def train(self, request: TrainRequest) -> TrainReply:
        s = self.settings
        devices = self._devices(request.devices)
        status = self._status(devices, request.round)
        if composed(s.codec):
            return self._train_composed(request, devices, status)
        subs = self._decode(request.payloads)
        sizes = np.array([len(p) for p in request.payloads], dtype=np.int64)
        payload_of_device = np.asarray(request.payload_of_device, dtype=np.int64)
        downloaded = status != UNAVAILABLE  # failed devices downloaded, then failed
        active = np.flatnonzero(status == TRAINED)
        reply = _statuses(status, int(sizes[payload_of_device[downloaded]].sum()))
        layout = subs[0].layout
        if active.size == 0:
            return _nothing_trained(layout.dim, layout.num_blocks, reply)
        trained = devices[active]
        held = np.stack([subs[p].config for p in payload_of_device[active]])
        rngs = [device_rng(s.seed, int(d), request.round, STREAM_TRAIN) for d in trained]
        update, users = train_cohort(
            torch.stack([sub.table for sub in subs]),
            torch.from_numpy(self.state.get(trained)),
            self.data.cohort(trained).train,
            None if held.all() else held,
            layout,
            self._local(request.round),
            rngs,
            table_of_device=payload_of_device[active],
            pipeline=s.pipeline.with_clip(request.clip),
        )
        self.state.put(trained, users.numpy())
        return _trained(update, reply)

    def _train_composed(
        self, request: TrainRequest, devices: np.ndarray, status: np.ndarray
    ) -> TrainReply:
        """Devices of a compressed format (hashing, qr) train their table's parameter rows;
        a cohort holds the devices of one table, so one payload."""
        s = self.settings
        (payload,) = request.payloads
        received = decode_trainable(s.codec, payload)
        reply = _statuses(status, len(payload) * int((status != UNAVAILABLE).sum()))
        active = np.flatnonzero(status == TRAINED)
        if active.size == 0:
            return _nothing_trained(received.dim, 1, reply)
        trained = devices[active]
        rngs = [device_rng(s.seed, int(d), request.round, STREAM_TRAIN) for d in trained]
        update, users = train_composed_cohort(
            received,
            torch.from_numpy(self.state.get(trained)),
            self.data.cohort(trained).train,
            self._local(request.round),
            rngs,
            s.pipeline.with_clip(request.clip),
        )
        self.state.put(trained, users.numpy())
        return _trained(update, reply)

    # ------------------------------------------------------------------ labelling
    def _personal_rngs(self, devices: np.ndarray, stamp: int) -> list[np.random.Generator]:
        return [device_rng(self.settings.seed, int(d), stamp, STREAM_PERSONALIZE) for d in devices]

    def label(self, request: LabelRequest) -> LabelReply:
        """Devices fit a copy of their user vector to the received table (kept private, not
        stored), rank all items under every candidate configuration, and sum the metrics."""
        s = self.settings
        named = self._devices(request.devices)
        kept = self._survivors(named, Kind.LABEL, request.stamp)
        devices, dropped = named[kept], int((~kept).sum())
        (sub,) = self._decode(request.payloads)
        layout = layout_of(sub)
        cohort = self.data.cohort(devices)
        configs = np.asarray(request.configs, dtype=bool)
        heads = np.asarray(request.item_is_head, dtype=bool) if request.item_is_head.size else None
        users = torch.from_numpy(self.state.get(devices))
        if request.as_dispatched:  # each configuration as if dispatched: refitted to it

            def sums_of(rows: np.ndarray | slice) -> ConfigSums:
                return test_configs_on_devices(
                    users[rows],
                    sub,
                    layout,
                    configs,
                    _take(cohort, rows),
                    list(s.ks),
                    heads,
                    s.personal,
                    lambda: self._personal_rngs(devices[rows], request.stamp),
                    request.target,
                )
        else:
            rngs = self._personal_rngs(devices, request.stamp)
            fitted = personalize(users, sub, layout, cohort, s.personal, rngs)

            def sums_of(rows: np.ndarray | slice) -> ConfigSums:
                return label_on_devices(
                    fitted[rows],
                    sub.table,
                    layout,
                    configs,
                    _take(cohort, rows),
                    list(s.ks),
                    heads,
                    request.target,
                )

        secure = s.pipeline.secure
        if secure is None:
            sums = sums_of(slice(None))  # the whole cohort, as it is
            keys = sorted(sums.sums)
            matrix, counts = sums.to_arrays(keys)
            return LabelReply(keys=tuple(keys), sums=matrix, counts=counts, dropped=dropped)
        # secure aggregation: every named device took part in the key rounds; the crashed or
        # late ones drop out before sending their masked vector (the server recovers the sum)
        keys = sorted(metric_keys(s.ks, buckets=heads is not None))
        own = np.zeros((named.size, configs.shape[0] * len(keys) + len(keys)))
        alive = np.isin(named, devices)
        for k, row in enumerate(np.flatnonzero(alive)):
            matrix, counts = sums_of(np.array([k])).to_arrays(keys)
            own[row] = np.concatenate([matrix.ravel(), counts])
        upload = secagg.mask_cohort(secagg.encode_fixed(own), alive, secure)
        return LabelReply(
            keys=tuple(keys),
            sums=np.zeros((0, len(keys))),
            counts=np.zeros(0),
            dropped=dropped,
            **upload.reply_fields(),
        )

    # ------------------------------------------------------------------ test
    def test(self, request: TestRequest) -> TestReply:
        s = self.settings
        named = self._devices(request.devices)
        kept = self._survivors(named, Kind.TEST, 0)
        devices, dropped = named[kept], int((~kept).sum())
        subs = self._decode(request.payloads)
        sizes = np.array([len(p) for p in request.payloads], dtype=np.int64)
        head = np.asarray(request.item_is_head, dtype=bool)
        report = test_dispatched(
            subs,
            sizes,
            np.asarray(request.payload_of_device, dtype=np.int64)[kept],
            self.data.budget_bytes[devices],
            torch.from_numpy(self.state.get(devices)),
            self.data.cohort(devices),
            layout_of,
            list(s.ks),
            item_is_head=torch.from_numpy(head) if head.size else None,
            personal=s.personal,
            rngs=self._personal_rngs(devices, 0),
        )
        self.state.put(devices, report.user_vecs.numpy())
        keys = tuple(report.metrics)
        return TestReply(
            devices=devices,
            accepted=report.accepted,
            bytes_received=report.bytes_received,
            evaluated=report.evaluated,
            keys=keys,
            metrics=np.stack([report.metrics[k] for k in keys], axis=1),
            dropped=dropped,
        )


def _take(cohort: CohortData, rows: np.ndarray | slice) -> CohortData:
    """The cohort's devices at ``rows`` (positions or a slice); all of them: not copied."""
    if isinstance(rows, slice):
        if rows == slice(None):
            return cohort
        rows = np.arange(cohort.size)[rows]
    return cohort.take(rows)


def _statuses(status: np.ndarray, bytes_down: int) -> dict:
    """The reply's per-status device counts and the bytes its devices downloaded."""
    return dict(
        trained=int((status == TRAINED).sum()),
        unavailable=int((status == UNAVAILABLE).sum()),
        failed=int((status == FAILED).sum()),
        late=int((status == LATE).sum()),
        bytes_down=bytes_down,
    )


def _trained(update: CohortUpdate, reply: dict) -> TrainReply:
    return TrainReply(
        rows=update.rows,
        sum_wdelta=update.sum_wdelta,
        sum_w=update.sum_w,
        bytes_up=update.bytes_up,
        loss_sum=update.loss_sum,
        loss_count=update.loss_count,
        clip_below=update.clip_below,
        **reply,
    )


def _nothing_trained(dim: int, num_blocks: int, reply: dict) -> TrainReply:
    none = np.zeros(0, dtype=np.int64)
    return TrainReply(
        rows=none,
        sum_wdelta=np.zeros((0, dim)),
        sum_w=np.zeros((0, num_blocks)),
        bytes_up=0,
        loss_sum=0.0,
        loss_count=0.0,
        **reply,
    )
