"""The fleet: which users become devices, and each device's memory budget, tier and availability.

Budgets come from ``tiers`` (shares of the fleet) or from a ``trace`` CSV with one row per device
(``device_id``, ``budget``, optional ``tier`` and ``availability``). Every device gets its own
seed, derived from the scenario seed and its id, so that what a device does never depends on
which worker or cohort runs it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedrule import seeds
from fedrule.errors import BudgetError, ConfigError
from fedrule.units import Budget, parse_budget


@dataclass(frozen=True)
class Tier:
    name: str
    share: float
    budget: Budget
    availability: float = 1.0


@dataclass(frozen=True, eq=False)
class Fleet:
    """Per-device arrays, index = device number (devices are numbered 0..n-1)."""

    user: np.ndarray  # int64: the user (row of the split) each device holds
    budget_bytes: np.ndarray  # int64
    tier: np.ndarray  # int64 index into tier_names
    tier_names: tuple[str, ...]
    availability: np.ndarray  # float64 in [0, 1]
    failure_rate: float

    @property
    def size(self) -> int:
        return int(self.user.size)


def device_rng(seed: int, device: int, *stream: int) -> np.random.Generator:
    """The random stream of one device for one purpose (round, phase...), independent of cohorts."""
    return np.random.default_rng(np.random.SeedSequence([seed, device, *stream]))


def choose_users(eligible: np.ndarray, num_devices: int, seed: int) -> np.ndarray:
    """All eligible users (num_devices 0), or a seeded sample of them in ascending order."""
    if num_devices <= 0 or num_devices >= eligible.size:
        return eligible.astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, seeds.FLEET_USERS]))
    return np.sort(rng.choice(eligible, size=num_devices, replace=False)).astype(np.int64)


def assign_tiers(num_devices: int, tiers: list[Tier], seed: int) -> np.ndarray:
    """Tier index per device: exact shares (largest remainder), randomly placed over devices."""
    shares = np.array([t.share for t in tiers], dtype=np.float64)
    raw = shares * num_devices
    counts = np.floor(raw).astype(np.int64)
    remainder = num_devices - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:remainder]] += 1
    labels = np.repeat(np.arange(len(tiers)), counts)
    rng = np.random.default_rng(np.random.SeedSequence([seed, seeds.FLEET_TIERS]))
    return rng.permutation(labels)


def fleet_from_tiers(
    users: np.ndarray, tiers: list[Tier], full_table_bytes: int, failure_rate: float, seed: int
) -> Fleet:
    tier = assign_tiers(users.size, tiers, seed)
    budgets = np.array([t.budget.resolve(full_table_bytes) for t in tiers], dtype=np.int64)
    availability = np.array([t.availability for t in tiers], dtype=np.float64)
    return Fleet(
        user=users,
        budget_bytes=budgets[tier],
        tier=tier,
        tier_names=tuple(t.name for t in tiers),
        availability=availability[tier],
        failure_rate=failure_rate,
    )


def fleet_from_trace(
    path: str | Path,
    user_ids: np.ndarray,
    tier_names: list[str] | None,
    full_table_bytes: int,
    failure_rate: float,
    key: str = "fleet.trace",
) -> Fleet:
    """Read a device trace: one row per device; ``device_id`` is the user id of the dataset."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such trace file", path=key, hint=str(path))
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"trace {path.name} is not UTF-8 text (byte {err.start})", path=key
        ) from None
    except csv.Error as err:
        raise ConfigError(f"trace {path.name} is not a CSV file ({err})", path=key) from None
    for needed in ("device_id", "budget"):
        if needed not in columns:
            raise ConfigError(
                f"trace {path} has no column '{needed}'",
                path=key,
                hint="columns: device_id, budget, optional tier, availability",
            )
    index = {str(u): i for i, u in enumerate(user_ids)}
    users, budgets, tiers, availability = [], [], [], []
    names = list(tier_names or [])
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{key} ({path.name} line {line})"
        device = (row["device_id"] or "").strip()
        if device not in index:
            raise ConfigError(f"device_id {device!r} is not a user of the dataset", path=where)
        if device in seen:
            raise ConfigError(
                f"device_id {device!r} is listed twice (lines {seen[device]} and {line})",
                path=where,
                hint="one row per device",
            )
        seen[device] = line
        users.append(index[device])
        try:
            budget = parse_budget((row["budget"] or "").strip(), path=where)
        except BudgetError as err:
            raise ConfigError(err.message, path=where, hint=err.hint) from None
        budgets.append(budget.resolve(full_table_bytes))
        tier = (row.get("tier") or "").strip()
        if tier and tier_names is not None and tier not in tier_names:
            raise ConfigError(
                f"unknown tier {tier!r}", path=where, hint=f"fleet.tiers names: {tier_names}"
            )
        tier = tier or "trace"
        if tier not in names:
            names.append(tier)
        tiers.append(names.index(tier))
        value = (row.get("availability") or "").strip()
        try:
            avail = float(value) if value else 1.0
        except ValueError:
            avail = -1.0
        if not 0.0 <= avail <= 1.0:
            raise ConfigError(f"availability {value!r} must lie in [0, 1]", path=where)
        availability.append(avail)
    if not users:
        raise ConfigError(f"trace {path} lists no device", path=key)
    order = np.argsort(users)
    return Fleet(
        user=np.asarray(users, dtype=np.int64)[order],
        budget_bytes=np.asarray(budgets, dtype=np.int64)[order],
        tier=np.asarray(tiers, dtype=np.int64)[order],
        tier_names=tuple(names),
        availability=np.asarray(availability, dtype=np.float64)[order],
        failure_rate=failure_rate,
    )
