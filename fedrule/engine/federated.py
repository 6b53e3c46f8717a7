"""One seed of a federated run: the only place that starts Ray.

The engine builds the fleet, writes the devices' private data and initial state where only the
simulated devices read them (the device data and state stores), hands the server the fleet's
registration data (budget and tier per device), and runs the federated algorithm on the
scenario's transport: Flower's simulation engine on its Ray backend (a private local Ray, or an
existing cluster: ``engine.ray_address`` / ``$RAY_ADDRESS``), or in this process. Ray is shut
down when the run ends, also after an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fedrule import interrupts, seeds
from fedrule.algorithm.context import PhaseObserver
from fedrule.algorithm.faulty import LossyTransport
from fedrule.algorithm.hooks import RoundHook
from fedrule.algorithm.methods import get_method
from fedrule.algorithm.packing import Packer
from fedrule.algorithm.server import FleetRegistry, FleetServer, ServerResults
from fedrule.algorithm.transport import Stopped, Transport
from fedrule.data.split import SplitData
from fedrule.device.faults import DeviceFaults
from fedrule.device.host import DeviceHost, HostSettings
from fedrule.device.local_spec import LocalSpec
from fedrule.device.state import DeviceStateStore
from fedrule.device.store import write_device_store
from fedrule.device.update import privacy_pipeline
from fedrule.engine.checkpoint import Checkpointer, load_checkpoint
from fedrule.engine.sanity import check_round_size
from fedrule.errors import BudgetError, ConfigError, FedruleError, Terminated, disk_error
from fedrule.events import Events
from fedrule.fleet import Fleet, Tier, choose_users, fleet_from_tiers, fleet_from_trace
from fedrule.lifeline import MARK, Guard, kill_marked
from fedrule.model.schedule import LrSchedule
from fedrule.pids import alive
from fedrule.privacy.audit import LeakageAudit, chosen_attacks, training_items
from fedrule.protocol import FAULT_KINDS
from fedrule.scenario.schema import ModelConfig, Scenario
from fedrule.systems.in_use import keys_in_use
from fedrule.transports.inprocess import InProcessTransport


@dataclass
class FederatedSeedResult:
    seed: int
    fleet: Fleet
    results: ServerResults
    seconds: float
    extra: dict = field(default_factory=dict)
    resumed_after_round: int | None = None  # continued from a checkpoint of this round


def build_fleet(scenario: Scenario, split: SplitData, full_table_bytes: int, seed: int) -> Fleet:
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


def refuse_unwired_systems(scenario: Scenario) -> None:
    """Device systems (fleet.systems, per-tier speeds, federated.round_policy) are built and
    tested (fedrule.systems) but training rounds do not consult them yet: refuse a run that sets
    them instead of ignoring them."""
    keys = keys_in_use(scenario)
    if keys:
        raise ConfigError(
            "device systems are not used by federated training yet",
            path=keys[0],
            hint="docs/systems.md; leave the fleet's systems keys and round_policy unset",
        )


def check_budgets(scenario: Scenario, fleet: Fleet, n_items: int) -> None:
    """Every budget must hold the smallest payload of the method's format (one-line error
    naming the tier)."""
    method = get_method(scenario.federated.method)
    minimum, what = method.min_budget(scenario.model, n_items)
    low = int(fleet.budget_bytes.min())
    tier = int(fleet.tier[int(np.argmin(fleet.budget_bytes))])
    path = f"fleet.tiers[{tier}].budget" if scenario.fleet.trace is None else "fleet.trace"
    if low < minimum:
        raise BudgetError(
            f"budget of {low} bytes is below the smallest payload of {method.name}: {what} "
            f"({minimum} bytes at least)",
            path=path,
        )


def lr_schedule(scenario: Scenario) -> LrSchedule:
    fed = scenario.federated
    final = 0.1 if fed.lr_final is None else fed.lr_final
    return LrSchedule(fed.lr_schedule, final, max(fed.rounds, 1))


def local_spec(scenario: Scenario, *, personal: bool = False) -> LocalSpec | None:
    """How a device trains in a round, or (``personal``) how it fits its user vector to a
    received table before evaluating: items fixed, no sub-configurations (None: never). The
    methods but RULE's supernet train plain BPR on what they hold."""
    fed, train = scenario.federated, scenario.train
    if personal and fed.personalize_epochs == 0:
        return None
    plain = personal or not get_method(fed.method).trains_subconfigs
    return LocalSpec(
        epochs=fed.personalize_epochs if personal else fed.local_epochs,
        batch_size=fed.local_batch_size,
        lr=fed.personalize_lr if personal and fed.personalize_lr is not None else fed.local_lr,
        negatives=train.negatives,
        l2=train.l2,
        lambda_div=0.0 if plain else train.lambda_div,
        sampling="none" if plain else train.sampling,
        optimizer=fed.local_optimizer,
        optimizer_options=json.dumps(fed.local_optimizer_options, sort_keys=True),
        compiled=train.compile,
        negative_exponent=train.negative_exponent,
    )


def _ray_init_args(scenario: Scenario, verbose: bool) -> dict:
    address = scenario.engine.ray_address or os.environ.get("RAY_ADDRESS")
    quiet = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    if address:
        return {"address": address, **quiet}
    cpus = scenario.engine.num_cpus or os.cpu_count() or 1
    return {"address": "local", "num_cpus": cpus, "include_dashboard": False, **quiet}


def run_federated_seed(
    scenario: Scenario,
    split: SplitData,
    seed: int,
    events: Events,
    verbose: bool = False,
    hooks: Sequence[RoundHook] = (),
    checkpoint_dir: Path | None = None,
    observers: Sequence[PhaseObserver] = (),
) -> FederatedSeedResult:
    """One seed of a federated run on the scenario's transport (Flower on Ray, or in-process).

    With ``checkpoint_dir``, the run checkpoints there every ``engine.checkpoint_every`` rounds
    and continues from a checkpoint of the same seed it finds there (the checkpoint counts in
    ``extra`` go on from it; ``resumed_after_round`` says from which round: not in ``extra``,
    which reaches metrics.json, so that a resumed run's results equal an uninterrupted one's).
    ``observers`` are told of every phase of the server (``PhaseObserver``)."""
    model, engine = scenario.model, scenario.engine
    refuse_unwired_systems(scenario)
    full_table_bytes = split.n_items * model.dim * model.bytes_per_value
    fleet = build_fleet(scenario, split, full_table_bytes, scenario.seeds[0])
    check_budgets(scenario, fleet, split.n_items)
    check_round_size(scenario, fleet.size)
    local_cpus = engine.num_cpus or os.cpu_count() or 1
    on_cluster = bool(engine.ray_address or os.environ.get("RAY_ADDRESS"))
    if engine.transport == "flower" and not on_cluster and engine.cpus_per_node > local_cpus:
        raise ConfigError(
            f"a worker of {engine.cpus_per_node} CPUs does not fit on {local_cpus} CPUs",
            path="engine.cpus_per_node",
            hint="lower it, or raise engine.num_cpus",
        )
    workers = max(1, local_cpus // engine.cpus_per_node)
    cost = np.diff(split.train.indptr)[fleet.user]  # simulated work per device (simulator only)
    method = get_method(scenario.federated.method)
    per_tier = fleet.tier if method.tables_per_tier else None  # cohorts never mix the tables
    packer = Packer(
        cost,
        workers,
        engine.messages_per_worker,
        engine.devices_per_node,
        per_tier,
        spread=scenario.privacy.secure_aggregation,  # cohorts of similar sizes: similar crowds
    )
    registry = FleetRegistry(split.n_items, fleet.budget_bytes, fleet.tier, fleet.tier_names)
    stop = threading.Event()
    started = time.perf_counter()
    if engine.transport == "flower":
        _check_cluster(scenario)
    resumed = load_checkpoint(checkpoint_dir, seed) if checkpoint_dir is not None else None
    store_root = _store_root(scenario)
    remove_stale_device_stores(store_root)
    audits: list[LeakageAudit] = []  # the audit of the server that ran, if audited
    local_ray = engine.transport == "flower" and not on_cluster
    with _run_folders(scenario, store_root, local_ray) as (store, ray_dir):
        tmp = str(store)
        users = resumed.users if resumed else initial_user_vectors(seed, fleet.size, model)
        state_store = _write_stores(scenario, store_root, tmp, split, fleet, users)
        all_hooks = list(hooks)
        if checkpoint_dir is not None and engine.checkpoint_every:
            checkpointer = Checkpointer.resuming(
                checkpoint_dir,
                engine.checkpoint_every,
                scenario.federated.rounds,
                state_store,
                resumed,
            )
            all_hooks.append(checkpointer)
        settings = HostSettings(
            store_dir=tmp,
            seed=seed,
            local=local_spec(scenario),
            ks=tuple(scenario.eval.ks),
            failure_rate=fleet.failure_rate,
            threads=engine.cpus_per_node,
            personal=local_spec(scenario, personal=True) if method.personalizes else None,
            pipeline=privacy_pipeline(scenario.privacy, split.n_items, scenario.federated.mode),
            faults=device_faults(scenario),
            codec=method.codec_kind,
            schedule=lr_schedule(scenario),
        )

        def make_server(transport: Transport) -> FleetServer:
            faults = scenario.faults
            if faults.message_loss:
                transport = LossyTransport(transport, faults.message_loss, seed, faults.phases)
            audited = scenario.privacy.audit  # the leakage audit observes what the server gets
            audit = LeakageAudit(
                training_items(split.train, fleet.user),
                split.n_items,
                scenario.train.negatives,
                chosen_attacks(scenario.privacy.attacks, scenario.privacy.attack_options),
            )
            audits.append(audit)
            return FleetServer(
                scenario,
                seed,
                registry,
                audit.observe(transport) if audited else transport,
                events,
                hooks=[audit, *all_hooks] if audited else all_hooks,
                resume=resumed.state if resumed else None,
                observers=observers,
            )

        events.message(
            f"fleet: {fleet.size} devices; messages of at most {engine.devices_per_node} devices, "
            f"about {engine.messages_per_worker} per worker; {engine.transport} transport"
        )
        if engine.transport == "inprocess":
            torch.set_num_threads(engine.cpus_per_node)
            transport = InProcessTransport(DeviceHost(settings), packer, stop)
            results = _run_guarded(lambda: make_server(transport).run(), stop)
        else:
            results = _run_on_flower(
                scenario, settings, packer, make_server, stop, events, verbose, ray_dir
            )
    extra: dict = {}
    if checkpoint_dir is not None and engine.checkpoint_every:
        extra = {"checkpoints": checkpointer.saves, "checkpoint_seconds": checkpointer.seconds}
    if audits and scenario.privacy.audit:
        extra["audit_test"] = audits[-1].test_leakage()
    seconds = time.perf_counter() - started
    after = resumed.state.round if resumed else None
    return FederatedSeedResult(seed, fleet, results, seconds, extra, resumed_after_round=after)


def device_faults(scenario: Scenario) -> DeviceFaults:
    """The device-side faults of ``scenario.faults`` (message loss is the transport's)."""
    faults = scenario.faults
    return DeviceFaults(
        crash=faults.crash,
        straggler=faults.straggler,
        straggler_delay=faults.straggler_delay,
        deadline=faults.deadline,
        worker_crash=faults.worker_crash,
        kinds=frozenset(FAULT_KINDS[phase] for phase in faults.phases),
    )


STORE_PREFIX = "fedrule-devices-"


@contextlib.contextmanager
def _run_folders(
    scenario: Scenario, store_root: Path, local_ray: bool
) -> Iterator[tuple[Path, Path | None]]:
    """The run's device store folder and, for a private local Ray, Ray's temporary folder
    (its ``session_*`` folder, logs and sockets), both watched by a ``Guard``: they are removed
    when the run ends, and also when it is killed (with the Ray processes it started)."""
    store = _make_store_folder(scenario, store_root)
    ray_dir = None
    try:
        if local_ray:
            ray_base = ray_temp_base()
            remove_stale_ray_folders(ray_base)
            ray_dir = Path(tempfile.mkdtemp(prefix=f"{RAY_PREFIX}{os.getpid()}-", dir=ray_base))
        guard = Guard.start(_mark(store, ray_dir), [store, *([ray_dir] if ray_dir else [])])
    except BaseException:
        shutil.rmtree(store, ignore_errors=True)
        if ray_dir is not None:
            shutil.rmtree(ray_dir, ignore_errors=True)
        raise
    try:
        yield store, ray_dir
    finally:
        shutil.rmtree(store, ignore_errors=True)
        guard.release()
        if ray_dir is not None:
            shutil.rmtree(ray_dir, ignore_errors=True)


def _mark(store: Path, ray_dir: Path | None) -> str:
    """What marks the processes of this run (``lifeline.MARK``): its Ray folder's name."""
    return (ray_dir or store).name


def _store_key(scenario: Scenario) -> str:
    return "engine.store_dir" if scenario.engine.store_dir else "$TMPDIR"


_STORE_WHAT = "the device store (every device's data)"
_STORE_SETTING = "engine.store_dir (or TMPDIR)"


def _make_store_folder(scenario: Scenario, root: Path) -> Path:
    prefix = f"{_store_owner()}{os.getpid()}-"
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError as err:
        failure = disk_error(
            err, root, _STORE_WHAT, key=_store_key(scenario), setting=_STORE_SETTING
        )
        if failure is None:
            raise
        raise failure from None


def _write_stores(
    scenario: Scenario, root: Path, folder: Path, split: object, fleet: Fleet, users: np.ndarray
) -> DeviceStateStore:
    """The device data and state stores in ``folder``; a full disk (``engine.store_dir`` or
    ``$TMPDIR``) is a one-line error (the caller removes the folder)."""
    try:
        write_device_store(folder, split, fleet.user, fleet)
        return DeviceStateStore.create(folder, users)
    except OSError as err:
        failure = disk_error(
            err, root, _STORE_WHAT, key=_store_key(scenario), setting=_STORE_SETTING
        )
        if failure is None:
            raise
        raise failure from None


def _store_root(scenario: Scenario) -> Path:
    root = Path(scenario.engine.store_dir or tempfile.gettempdir())
    if not root.is_dir():
        raise ConfigError("is not a folder", path="engine.store_dir", hint=str(root))
    return root


def remove_stale_device_stores(root: Path) -> None:
    """Remove device stores (every device's private data) left by killed runs of this machine:
    a store's folder name carries its machine and its run's process id."""
    owner = _store_owner()
    for path in root.glob(f"{owner}*"):
        pid = path.name.removeprefix(owner).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


RAY_PREFIX = "fedrule-ray-"


def ray_temp_base() -> Path:
    """Where Ray puts its temporary folder by default ($RAY_TMPDIR, else /tmp on Linux): each
    local Ray of fedrule gets its own ``fedrule-ray-<pid>-*`` folder there (short: Ray's
    sockets live in it), removed when the run ends."""
    base = os.environ.get("RAY_TMPDIR") or ("/tmp" if sys.platform.startswith("linux") else "")
    return Path(base or tempfile.gettempdir())


def remove_stale_ray_folders(base: Path) -> None:
    """Ray folders of killed runs whose guard did not clean up (it was killed too): the Ray
    processes that carry their mark are killed and the folders removed."""
    for path in base.glob(f"{RAY_PREFIX}*"):
        pid = path.name.removeprefix(RAY_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)) and path.is_dir():
            kill_marked(path.name)
            shutil.rmtree(path, ignore_errors=True)


def _store_owner() -> str:
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())
    return f"{STORE_PREFIX}{host}-"


def _check_cluster(scenario: Scenario) -> None:
    """Fail fast (engine.connect_timeout) when engine.ray_address names a cluster that does not
    answer, instead of letting Ray retry forever."""
    address = scenario.engine.ray_address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"expected host:port, got {address!r}", path="engine.ray_address")
    timeout = scenario.engine.connect_timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({err.strerror or err})",
            path="engine.ray_address",
            hint="start it with 'ray start --head', or fix the address",
        ) from None


def initial_user_vectors(seed: int, num_devices: int, model: ModelConfig) -> np.ndarray:
    """Every device's initial private user vector (written to the device state store)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, seeds.USER_INIT]))
    return (rng.standard_normal((num_devices, model.dim)) * model.init_std).astype(np.float32)


def _run_guarded(body: Callable[[], ServerResults], stop: threading.Event) -> ServerResults:
    """Run ``body``; SIGINT and SIGTERM stop the server's phases first, then raise
    ``KeyboardInterrupt`` / ``Terminated`` in the main thread (the first signal only: later
    ones wait for the cleanup, ``fedrule.interrupts``)."""
    signals = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in signals} if in_main else {}
    received: list[type[KeyboardInterrupt]] = []

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        received.append(signals[signal.Signals(signum)])
        interrupts.on_signal(signum, frame)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        return body()
    except Stopped:
        raise (received[-1] if received else KeyboardInterrupt)() from None
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_on_flower(
    scenario: Scenario,
    settings: HostSettings,
    packer: Packer,
    make_server: Callable[[Transport], FleetServer],
    stop: threading.Event,
    events: Events,
    verbose: bool,
    ray_dir: Path | None,
) -> ServerResults:
    from fedrule.transports.flower.simulation import simulate

    engine = scenario.engine
    backend_config = {
        # max_restarts: Ray restarts a ClientApp actor whose worker process died (a crash, an
        # injected fault, the OOM killer); the message it held fails, later ones run again
        "client_resources": {"num_cpus": engine.cpus_per_node, "num_gpus": 0.0, "max_restarts": -1},
        "init_args": _ray_init_args(scenario, verbose),
    }
    _quiet_logs()
    init_args = backend_config["init_args"]
    if ray_dir is not None:  # a private local Ray: its session folder goes with the run
        init_args["_temp_dir"] = str(ray_dir)
    _start_ray(init_args, None if ray_dir is None else ray_dir.name)

    def body() -> ServerResults:
        try:
            results = simulate(
                make_server,
                settings,
                packer,
                engine.round_timeout,
                stop,
                events,
                backend_config,
                verbose,
            )
        except (FedruleError, KeyboardInterrupt, Stopped):
            stop.set()
            raise
        except RuntimeError as err:  # Flower's engine or Ray failed
            stop.set()
            cause = err.__cause__ or err
            if isinstance(cause, FedruleError):  # the server's own one-line error (a full disk)
                raise cause from None
            raise FedruleError(
                f"the simulation engine failed: {cause}", hint="run with --verbose for its logs"
            ) from err
        finally:
            stop.set()
            _shutdown_ray()
        if results is None:
            raise RuntimeError("the federated run ended before the server finished its phases")
        return results

    return _run_guarded(body, stop)


def _quiet_logs() -> None:
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _start_ray(init_args: dict, mark: str | None) -> None:
    """Start (or join) Ray in this thread before Flower would. Workers get this process's
    import path, as Flower does; with ``mark``, every process Ray starts here carries it in
    its environment (``lifeline.MARK``), so that the run's guard can kill them if the run is
    killed.

    ``ray.init`` installs a SIGTERM handler of its own (``sys.exit(15)``): a SIGTERM during
    start-up ended the process with exit code 15, no message and the device store left behind,
    or was lost when the exit was raised inside logging's fork handler. Ray's handler is kept
    out (``_without_ray_sigterm_handler``), fedrule's stays, and a stop signal that arrived
    during start-up but was swallowed on the way is raised once ``ray.init`` returns."""
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join(
        [*sys.path, *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])]
    )
    os.environ["PYTHONPATH"] = pythonpath
    in_main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in interrupts.STOP_SIGNALS} if in_main else {}
    if mark is not None:
        os.environ[MARK] = mark
    try:
        with _without_ray_sigterm_handler():
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
        if interrupts.stopping():  # a signal whose exception was swallowed inside ray.init
            raise Terminated if Terminated.received else KeyboardInterrupt
    except SystemExit as exc:  # Ray's own SIGTERM handler, where it could not be kept out
        _shutdown_ray(started=False)
        if exc.code != signal.SIGTERM:
            raise
        interrupts.on_signal(signal.SIGTERM)  # raises Terminated unless already stopping
        raise Terminated from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        _shutdown_ray(started=False)
        raise FedruleError(
            f"Ray did not start: {err}".splitlines()[0], path="engine.ray_address"
        ) from None
    except BaseException:
        _shutdown_ray(started=False)
        raise
    finally:
        os.environ.pop(MARK, None)
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _without_ray_sigterm_handler() -> Iterator[None]:
    """``ray.init`` without the SIGTERM handler it would install (it asks
    ``ray._private.utils.set_sigterm_handler``, a private function: where a Ray version lacks
    it, Ray's handler is installed and its ``SystemExit(15)`` is caught instead)."""
    import ray._private.utils as ray_utils

    original = getattr(ray_utils, "set_sigterm_handler", None)
    if original is None:
        yield
        return
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = original


def _shutdown_ray(started: bool = True) -> None:
    """Shut Ray down; ``started=False``: after a failed or interrupted ``ray.init``, which may
    have started Ray's processes without finishing (``ray.shutdown`` stops them too)."""
    import ray

    if ray.is_initialized() or not started:
        with contextlib.suppress(Exception):
            ray.shutdown()
