"""One seed of a federated run: a Flower fleet simulated on Ray. The only place that starts Ray.

The engine builds the fleet, writes the devices' private data where only the simulated devices
read it, hands the server the fleet's registration data (budget and tier per device), and runs
Flower's simulation engine on its Ray backend: a private local Ray, or an existing cluster
(``engine.ray_address`` / ``$RAY_ADDRESS``). Ray is shut down when the run ends, also after an
error or Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedrule.device.local_train import LocalSpec
from fedrule.device.store import write_device_store
from fedrule.engine.events import Events
from fedrule.errors import BudgetError, ConfigError, FedruleError
from fedrule.fleet import Fleet, Tier, choose_users, fleet_from_tiers, fleet_from_trace
from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.scenario.schema import Scenario


@dataclass
class FederatedSeedResult:
    seed: int
    fleet: Fleet
    results: object  # federated.server_app.ServerResults
    seconds: float
    extra: dict = field(default_factory=dict)


def build_fleet(scenario: Scenario, split: object, full_table_bytes: int, seed: int) -> Fleet:
    """Devices (users with training data, or a seeded sample) and their budgets."""
    fleet_cfg = scenario.fleet
    if fleet_cfg.trace is not None:
        names = [t.name for t in fleet_cfg.tiers]
        fleet = fleet_from_trace(
            fleet_cfg.trace, split.user_ids, names, full_table_bytes, fleet_cfg.failure_rate
        )
        has_train = np.diff(split.train.indptr)[fleet.user] > 0
        if not has_train.all():
            bad = split.user_ids[fleet.user[~has_train][0]]
            raise ConfigError(f"device {bad} has no training interactions", path="fleet.trace")
        return fleet
    eligible = np.flatnonzero(np.diff(split.train.indptr) > 0)
    users = choose_users(eligible, fleet_cfg.num_devices, seed)
    tiers = [Tier(t.name, t.share, t.budget, t.availability) for t in fleet_cfg.tiers]
    return fleet_from_tiers(users, tiers, full_table_bytes, fleet_cfg.failure_rate, seed)


def check_budgets(scenario: Scenario, fleet: Fleet, n_items: int) -> None:
    """Every budget must hold the smallest configuration (one-line error naming the tier)."""
    model = scenario.model
    layout = ElasticLayout(  # the minimum depends on group count and sizes' sum, not popularity
        model.dim,
        model.blocks,
        make_groups(np.ones(n_items), model.groups, model.grouping),
        model.min_blocks_per_group,
        model.bytes_per_value,
    )
    minimum = layout.min_bytes()
    low = int(fleet.budget_bytes.min())
    if low >= minimum:
        return
    tier = int(fleet.tier[int(np.argmin(fleet.budget_bytes))])
    path = f"fleet.tiers[{tier}].budget" if scenario.fleet.trace is None else "fleet.trace"
    raise BudgetError(
        f"budget of {low} bytes is below the smallest configuration ({minimum} bytes: "
        f"{model.min_blocks_per_group} block(s) per group + metadata)",
        path=path,
    )


def local_spec(scenario: Scenario, *, personal: bool = False) -> LocalSpec | None:
    """How a device trains in a round, or (``personal``) how it fits its user vector to a
    received table before evaluating: items fixed, no sub-configurations (None: never)."""
    fed, train = scenario.federated, scenario.train
    if personal and fed.personalize_epochs == 0:
        return None
    return LocalSpec(
        epochs=fed.personalize_epochs if personal else fed.local_epochs,
        batch_size=fed.local_batch_size,
        lr=fed.local_lr,
        negatives=train.negatives,
        l2=train.l2,
        lambda_div=0.0 if personal else train.lambda_div,
        sampling="none" if personal else train.sampling,
        optimizer=fed.local_optimizer,
    )


def _ray_init_args(scenario: Scenario, verbose: bool) -> dict:
    address = scenario.engine.ray_address or os.environ.get("RAY_ADDRESS")
    quiet = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address:
        return {"address": address, **quiet}
    cpus = scenario.engine.num_cpus or os.cpu_count() or 1
    return {"address": "local", "num_cpus": cpus, "include_dashboard": False, **quiet}


def run_federated_seed(
    scenario: Scenario, split: object, seed: int, events: Events, verbose: bool = False
) -> FederatedSeedResult:
    from flwr.simulation import run_simulation

    from fedrule.federated.client_app import build_client_app
    from fedrule.federated.server_app import (
        ServerResults,
        ServerSettings,
        SimulationStopped,
        build_server_app,
    )
    from fedrule.federated.settings import ModelShape, NodeSettings

    model = scenario.model
    full_table_bytes = split.n_items * model.dim * model.bytes_per_value
    fleet = build_fleet(scenario, split, full_table_bytes, scenario.seeds[0])
    check_budgets(scenario, fleet, split.n_items)
    shape = ModelShape(
        n_items=split.n_items,
        dim=model.dim,
        num_blocks=model.blocks,
        min_blocks=model.min_blocks_per_group,
        bytes_per_value=model.bytes_per_value,
        rescale=model.rescale,
        init_std=model.init_std,
    )
    engine = scenario.engine
    local_cpus = engine.num_cpus or os.cpu_count() or 1
    if (
        not (engine.ray_address or os.environ.get("RAY_ADDRESS"))
        and engine.cpus_per_node > local_cpus
    ):
        raise ConfigError(
            f"a worker of {engine.cpus_per_node} CPUs does not fit on {local_cpus} CPUs",
            path="engine.cpus_per_node",
            hint="lower it, or raise engine.num_cpus",
        )
    num_nodes = math.ceil(fleet.size / engine.devices_per_node)
    results = ServerResults()
    stop = threading.Event()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedrule-devices-") as tmp:
        store = write_device_store(Path(tmp) / "devices.npz", split, fleet.user, fleet)
        node_settings = NodeSettings(
            store_path=str(store),
            seed=seed,
            num_devices=fleet.size,
            devices_per_node=engine.devices_per_node,
            shape=shape,
            local=local_spec(scenario),
            ks=tuple(scenario.eval.ks),
            failure_rate=fleet.failure_rate,
            threads=engine.cpus_per_node,
            personal=local_spec(scenario, personal=True),
        )
        server_settings = ServerSettings(
            scenario=scenario,
            seed=seed,
            shape=shape,
            num_nodes=num_nodes,
            devices_per_node=engine.devices_per_node,
            budget_bytes=fleet.budget_bytes,
            tier=fleet.tier,
            tier_names=fleet.tier_names,
        )
        backend_config = {
            "client_resources": {"num_cpus": engine.cpus_per_node, "num_gpus": 0.0},
            "init_args": _ray_init_args(scenario, verbose),
        }
        events.message(
            f"fleet: {fleet.size} devices on {num_nodes} Flower nodes "
            f"({engine.devices_per_node} per node), Ray workers of {engine.cpus_per_node} CPU"
        )
        _quiet_logs(verbose)
        previous = signal.getsignal(signal.SIGINT)
        in_main = threading.current_thread() is threading.main_thread()

        def on_sigint(signum: int, frame: object) -> None:
            stop.set()
            raise KeyboardInterrupt

        if in_main:
            signal.signal(signal.SIGINT, on_sigint)
        try:
            run_simulation(
                server_app=build_server_app(server_settings, events, results, stop),
                client_app=build_client_app(node_settings),
                num_supernodes=num_nodes,
                backend_name="ray",
                backend_config=backend_config,
                verbose_logging=verbose,
            )
        except SimulationStopped:
            raise KeyboardInterrupt from None
        except (FedruleError, KeyboardInterrupt):
            stop.set()
            raise
        except RuntimeError as err:  # Flower's engine or Ray failed
            stop.set()
            cause = err.__cause__ or err
            raise FedruleError(
                f"the simulation engine failed: {cause}", hint="run with --verbose for its logs"
            ) from err
        finally:
            stop.set()
            if in_main:
                signal.signal(signal.SIGINT, previous)
            _shutdown_ray()
    if results.table is None:
        raise RuntimeError("the federated run ended before the server finished its phases")
    return FederatedSeedResult(seed, fleet, results, time.perf_counter() - started)


def _quiet_logs(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
