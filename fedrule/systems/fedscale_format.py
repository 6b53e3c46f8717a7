"""FedScale's two device-trace files, read and mapped to fedrule's units.

The formats (SymbioticLab/FedScale, ``benchmark/dataset/data/device_info/README.md``; both are
pickled dicts keyed by client id):

- device capacity (``client_device_capacity``): ``{client_id: {"computation": float,
  "communication": float}}``;
- behaviour trace (``client_behave_trace``): ``{client_id: {"active": [int], "inactive": [int],
  "finish_time": int, "duration": int, "model": str}}``.

Their units, from how FedScale uses them:

- ``computation`` is milliseconds per sample of inference: ``ClientMetadata.get_completion_time``
  (``fedscale/cloud/internal/client_metadata.py``) computes a round's training time as
  ``augmentation_factor * batch_size * local_steps * computation / 1000`` seconds with
  ``augmentation_factor=3.0`` ("backward-pass takes around 2x the latency"). So a device trains
  ``examples_per_second = 1000 / (augmentation * computation)``.
- ``communication`` is kbit/s with 1 kbit = 1024 bits: the same function divides
  ``upload_size + download_size`` by it, and the aggregator sizes updates as
  ``sys.getsizeof(pickle.dumps(model)) / 1024.0 * 8.0`` "kbits"
  (``fedscale/cloud/aggregation/aggregator.py``). FedScale has one bandwidth for both
  directions, so ``download_mbps = upload_mbps = communication * 1024 / 10^6``.
- behaviour: a client is active at ``t`` when ``active[i] <= t mod finish_time <= inactive[i]``
  for some i (``ClientMetadata.is_active``), seconds on the aggregator's virtual clock. fedrule
  reads the windows as [active[i], inactive[i]) repeating every ``finish_time`` seconds;
  ``duration`` and ``model`` are not used.

Mapping devices to entries: FedScale gives its client k (from 1) the capacity of key
``k mod N`` and the behaviour of the ``(k mod N)``-th key in file order
(``aggregator.client_register_handler``, ``client_manager.register_client``). fedrule gives
device d (from 0) the ``d mod N``-th entry in ascending key order, for both files: every device
gets an entry, whatever the keys, and the mapping depends on neither the dict's order nor on
which keys exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedrule.errors import ConfigError
from fedrule.systems.safe_pickle import load_plain

FEDSCALE_AUGMENTATION = 3.0  # FedScale's augmentation_factor: training = 3 x inference latency
KBIT_BITS = 1024  # FedScale's kbit (its update sizes are bytes / 1024 * 8)


def examples_per_second(computation_ms: np.ndarray, augmentation: float) -> np.ndarray:
    """Training examples per second from FedScale's inference milliseconds per sample."""
    return 1000.0 / (augmentation * np.asarray(computation_ms, dtype=np.float64))


def mbps(communication_kbps: np.ndarray) -> np.ndarray:
    """Mbit/s (10^6 bits) from FedScale's kbit/s (1024 bits)."""
    return np.asarray(communication_kbps, dtype=np.float64) * KBIT_BITS / 1e6


def entry_of_device(num_devices: int, num_entries: int) -> np.ndarray:
    """Which entry (position in ascending key order) each device takes: d mod N."""
    return np.arange(num_devices, dtype=np.int64) % num_entries


def _sorted_entries(data: Any, path: Path, key: str) -> list[tuple[Any, Any]]:
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{path.name} must hold a non-empty dict keyed by client id", path=key)
    try:
        return sorted(data.items(), key=lambda item: item[0])
    except TypeError:
        raise ConfigError(
            f"{path.name} mixes client ids that do not sort (e.g. numbers and strings)", path=key
        ) from None


def _number(value: Any, what: str, path: Path, key: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{path.name}: {what} is {value!r}, expected a finite number", path=key)
    if positive and value <= 0:
        raise ConfigError(f"{path.name}: {what} is {value!r}, expected > 0", path=key)
    return float(value)


@dataclass(frozen=True, eq=False)
class Capacities:
    """Per entry (ascending client id): FedScale's computation (ms/sample) and communication
    (kbit/s)."""

    client_ids: list[Any]
    computation_ms: np.ndarray
    communication_kbps: np.ndarray


def read_capacity(path: Path, key: str) -> Capacities:
    entries = _sorted_entries(load_plain(path, key), path, key)
    ids, computation, communication = [], [], []
    for client, value in entries:
        if not isinstance(value, Mapping) or not {"computation", "communication"} <= set(value):
            raise ConfigError(
                f"{path.name}: client {client!r} lacks computation or communication", path=key
            )
        ids.append(client)
        computation.append(
            _number(
                value["computation"], f"client {client!r} computation", path, key, positive=True
            )
        )
        communication.append(
            _number(
                value["communication"], f"client {client!r} communication", path, key, positive=True
            )
        )
    return Capacities(ids, np.array(computation), np.array(communication))


@dataclass(frozen=True, eq=False)
class Behaviour:
    """Per entry (ascending client id): its windows [active, inactive) and its period."""

    client_ids: list[Any]
    active_s: list[np.ndarray]
    inactive_s: list[np.ndarray]
    finish_time_s: np.ndarray


def read_behaviour(path: Path, key: str) -> Behaviour:
    entries = _sorted_entries(load_plain(path, key), path, key)
    ids, active, inactive, finish = [], [], [], []
    for client, value in entries:
        what = f"client {client!r}"
        if not isinstance(value, Mapping) or not {"active", "inactive", "finish_time"} <= set(
            value
        ):
            raise ConfigError(
                f"{path.name}: {what} lacks active, inactive or finish_time", path=key
            )
        on, off = value["active"], value["inactive"]
        if (
            not isinstance(on, list | tuple)
            or not isinstance(off, list | tuple)
            or len(on) != len(off)
        ):
            raise ConfigError(
                f"{path.name}: {what} needs lists active and inactive of one length", path=key
            )
        ids.append(client)
        active.append(
            np.array([_number(v, f"{what} active", path, key, positive=False) for v in on])
        )
        inactive.append(
            np.array([_number(v, f"{what} inactive", path, key, positive=False) for v in off])
        )
        finish.append(
            _number(value["finish_time"], f"{what} finish_time", path, key, positive=True)
        )
    return Behaviour(ids, active, inactive, np.array(finish))
