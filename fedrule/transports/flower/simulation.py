"""Run the algorithm on Flower's simulation engine (Message API, Ray backend).

The engine decides where Ray runs (``backend_config``) and shuts it down; this module only
builds the Flower apps and hands them to ``run_simulation``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flwr.simulation import run_simulation

from fedrule.algorithm.packing import Packer
from fedrule.algorithm.server import FleetServer, ServerResults
from fedrule.algorithm.transport import Transport
from fedrule.device.host import HostSettings
from fedrule.events import Events
from fedrule.transports.flower.client_app import build_client_app
from fedrule.transports.flower.server_app import IN_FLIGHT_PER_WORKER, build_server_app


def simulate(
    make_server: Callable[[Transport], FleetServer],
    settings: HostSettings,
    packer: Packer,
    timeout_s: float,
    stop: threading.Event,
    events: Events,
    backend_config: dict,
    verbose: bool,
) -> ServerResults | None:
    """The server's results, or None if the simulation ended before the server finished."""
    logging.getLogger("flwr").setLevel(logging.INFO if verbose else logging.ERROR)
    # every node can host any cohort: only as many nodes as messages in flight
    num_nodes = min(packer.max_cohorts(), IN_FLIGHT_PER_WORKER * packer.workers)
    finished: list[ServerResults] = []
    server_app = build_server_app(
        make_server,
        packer,
        num_nodes,
        timeout_s,
        stop,
        events,
        finished.append,
    )
    run_simulation(
        server_app=server_app,
        client_app=build_client_app(settings),
        num_supernodes=num_nodes,
        backend_name="ray",
        backend_config=backend_config,
        verbose_logging=verbose,
    )
    return finished[0] if finished else None
