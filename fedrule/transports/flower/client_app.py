"""The Flower ClientApp: a node simulates whatever cohort of devices a message names.

Handlers are module-level (pickled by reference into Ray workers), so a worker process builds
its ``DeviceHost`` once and keeps the device data loaded; the app only closes over the picklable
``HostSettings``. Device state lives in the device state store, not in the node's state, so any
node can simulate any device.
"""

from __future__ import annotations

import os

import torch
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp

from fedrule.device.faults import phase_of
from fedrule.device.host import DeviceHost, HostSettings
from fedrule.protocol import REQUESTS, Kind
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


def handle(settings: HostSettings, msg: Message) -> Message:
    """Decode the request, let the devices compute, encode the reply; a failure becomes a
    one-line error reply (the round goes on)."""
    try:
        request = REQUESTS[Kind(msg.metadata.message_type)].from_wire(from_records(msg.content))
        phase, stamp = phase_of(request)
        if settings.faults.worker_dies(settings.seed, request.devices, phase, stamp):
            os._exit(WORKER_CRASH_CODE)  # an injected fault: this Ray worker process dies
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
