"""The Flower ClientApp: a node simulates whatever cohort of devices a message names.

Handlers are module-level (pickled by reference into Ray workers), so a worker process builds
its ``DeviceHost`` once and keeps the device data loaded; the app only closes over the picklable
``HostSettings``. Device state lives in the device state store, not in the node's state, so any
node can simulate any device.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp

from fedrule.device.host import DeviceHost, HostSettings
from fedrule.protocol import REQUESTS, Kind, stamp_of
from fedrule.protocol import Message as ProtocolMessage
from fedrule.transports.flower.records import from_records, to_records

ERROR_CODE = 100  # a fedrule device-side error (the reason is one line)
WORKER_CRASH_CODE = 70  # exit status of a worker killed by an injected fault
_HOSTS: dict[HostSettings, DeviceHost] = {}


def _host(settings: HostSettings) -> DeviceHost:
    host = _HOSTS.get(settings)
    if host is None:
        torch.set_num_threads(settings.threads)
        _HOSTS.clear()  # one run per worker process at a time
        host = _HOSTS[settings] = DeviceHost(settings)
    return host


def _die_once(settings: HostSettings, request: ProtocolMessage) -> None:
    """An injected fault: the worker process handling this message dies. Ray restarts it and the
    server resends the message; the resent copy finds the crash marker and fails the message
    (the devices' work died with the process) instead of killing the new worker too."""
    folder = Path(settings.store_dir) / "worker-crashes"
    folder.mkdir(exist_ok=True)
    first = int(request.devices[0])
    marker = folder / f"{settings.seed}-{request.kind}-{stamp_of(request)}-{first}"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        raise RuntimeError("the worker process died while handling this message") from None
    os._exit(WORKER_CRASH_CODE)


def handle(settings: HostSettings, msg: Message) -> Message:
    """Decode the request, let the devices compute, encode the reply; a failure becomes a
    one-line error reply (the round goes on)."""
    try:
        request = REQUESTS[Kind(msg.metadata.message_type)].from_wire(from_records(msg.content))
        if settings.faults.worker_dies(settings.seed, request):
            _die_once(settings, request)
        reply = _host(settings).handle(request)
        return Message(to_records(reply.to_wire()), reply_to=msg)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return Message(Error(code=ERROR_CODE, reason=reason), reply_to=msg)


def build_client_app(settings: HostSettings) -> ClientApp:
    """One handler per protocol message kind (``category.action`` -> ``@app.category(action)``)."""
    app = ClientApp()

    def entry(msg: Message, context: Context) -> Message:
        return handle(settings, msg)

    for kind in Kind:
        category, _, action = kind.value.partition(".")
        register = getattr(app, category)
        (register(action) if action else register())(entry)
    return app
