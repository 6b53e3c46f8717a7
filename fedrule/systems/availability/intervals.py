"""Explicit windows per device, optionally repeating with a period of the device's own.

``Intervals`` answers the availability queries for any set of [start, end) windows: the trace
file model (``intervals``: a CSV or JSON file of ``device_id, start_s, end_s`` rows) and FedScale's
behaviour trace (``fedscale``: windows repeating every ``finish_time`` seconds) are both built on
it. Windows are merged per device where they overlap or touch; a device without windows is
never online. Queries are vectorised: one sort over the windows and the queries together.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedrule.errors import ConfigError
from fedrule.systems.availability.base import settle_online, times_of
from fedrule.systems.context import SystemsContext

COLUMNS = ("device_id", "start_s", "end_s")


@dataclass(frozen=True, eq=False)
class Intervals:
    """Merged windows, device after device (device d's are ``indptr[d]:indptr[d + 1]``, one
    sentinel window at ``inf`` after the last), and per device its period (``inf``: no
    repetition; a repeating device's windows lie in [0, period))."""

    indptr: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    period_s: np.ndarray

    @property
    def num_devices(self) -> int:
        return int(self.indptr.size - 1)

    @staticmethod
    def from_rows(
        num_devices: int,
        device: np.ndarray,
        start_s: np.ndarray,
        end_s: np.ndarray,
        period_s: np.ndarray | None = None,
    ) -> Intervals:
        """Windows from unordered rows (device number, start, end): a repeating device's windows
        clipped to [0, its period), empty ones dropped, overlapping or touching ones merged."""
        device = np.asarray(device, dtype=np.int64)
        start = np.asarray(start_s, dtype=np.float64)
        end = np.asarray(end_s, dtype=np.float64)
        period = np.full(num_devices, np.inf) if period_s is None else np.asarray(period_s, float)
        cap = period[device]
        repeats = np.isfinite(cap)
        start = np.where(repeats, np.maximum(start, 0.0), start)
        end = np.minimum(end, cap)
        keep = end > start
        order = np.lexsort((start[keep], device[keep]))
        device, start, end = device[keep][order], start[keep][order], end[keep][order]
        while device.size > 1:  # merge runs of windows that reach the next one, pass by pass
            reach = (device[1:] == device[:-1]) & (start[1:] <= end[:-1])
            if not reach.any():
                break
            first = np.flatnonzero(np.concatenate([[True], ~reach]))
            device, start, end = device[first], start[first], np.maximum.reduceat(end, first)
        indptr = np.searchsorted(device, np.arange(num_devices + 1))
        return Intervals(indptr, np.append(start, np.inf), np.append(end, np.inf), period)

    # ------------------------------------------------------------------ queries
    def _at(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        return values[np.clip(index, 0, values.size - 1)]

    def _locate(self, devices: np.ndarray, t: np.ndarray) -> _Located:
        """Per query: the start of the period it falls in (0 without repetition), the time
        within it, and the device's last window starting at or before that time (-1: none)."""
        period = self.period_s[devices]
        repeats = np.isfinite(period)
        cycle = np.where(repeats, period, 1.0)
        base = np.where(repeats, np.floor(t / cycle) * cycle, 0.0)
        x = t - base
        n = int(self.indptr[-1])
        owner = np.repeat(np.arange(self.num_devices), np.diff(self.indptr))
        is_query = np.concatenate([np.zeros(n, bool), np.ones(devices.size, bool)])
        order = np.lexsort(  # by device, then time; a window before a query at the same time
            (is_query, np.concatenate([self.start_s[:n], x]), np.concatenate([owner, devices]))
        )
        windows_up_to = np.cumsum(~is_query[order])
        index = np.empty(devices.size, dtype=np.int64)
        index[order[is_query[order]] - n] = windows_up_to[is_query[order]] - 1
        lo, hi = self.indptr[devices], self.indptr[devices + 1]
        index = np.where((index >= lo) & (index < hi), index, -1)
        online = (index >= 0) & (x < self._at(self.end_s, index))
        return _Located(base, x, index, online, lo, hi, period)

    def online(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return self._locate(*times_of(devices, t)).online

    def online_until(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        devices, t = times_of(devices, t)
        at = self._locate(devices, t)
        end = self._at(self.end_s, at.index)
        until = np.where(at.online, at.base + end, t)
        # a repeating device's window that runs to the end of the period goes on into the next
        # period's first window when that starts at 0 (one window, cut by the period)
        wraps = (
            at.online
            & np.isfinite(at.period)
            & (end >= at.period)
            & (self._at(self.start_s, at.lo) <= 0)
        )
        until = np.where(wraps, at.base + at.period + self._at(self.end_s, at.lo), until)
        return np.where(wraps & (at.hi - at.lo == 1), np.inf, until)  # [0, period): always

    def online_from(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        devices, t = times_of(devices, t)
        at = self._locate(devices, t)
        following = np.where(at.index >= 0, at.index + 1, at.lo)
        this_period = np.where(
            following < at.hi, at.base + self._at(self.start_s, following), np.inf
        )
        repeats = np.isfinite(at.period) & (at.hi > at.lo)
        next_period = np.where(repeats, at.base + at.period + self._at(self.start_s, at.lo), np.inf)
        found = np.where(at.online, t, np.minimum(this_period, next_period))
        return settle_online(self.online, devices, found)


@dataclass(frozen=True)
class _Located:
    base: np.ndarray
    x: np.ndarray
    index: np.ndarray
    online: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    period: np.ndarray


# ---------------------------------------------------------------------- the trace file model
def read_interval_file(path: Path, key: str) -> list[tuple[str, float, float, str]]:
    """Rows (device_id, start_s, end_s, where) of a .csv (header device_id,start_s,end_s) or a
    .json file (a list of objects with those keys); a one-line error naming the file and line
    (or item) otherwise."""
    if not path.is_file():
        raise ConfigError("no such availability file", path=key, hint=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path.name} as UTF-8 text ({err})", path=key) from None
    if path.suffix.lower() == ".json":
        return _json_rows(text, path, key)
    return _csv_rows(text, path, key)


def _csv_rows(text: str, path: Path, key: str) -> list[tuple[str, float, float, str]]:
    try:
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path.name} has no column '{missing[0]}'",
                path=key,
                hint="columns: " + ", ".join(COLUMNS),
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            where = f"{key} ({path.name} line {line})"
            rows.append((*_window(row, where), where))
        return rows
    except csv.Error as err:
        raise ConfigError(f"{path.name} is not a CSV file ({err})", path=key) from None


def _json_rows(text: str, path: Path, key: str) -> list[tuple[str, float, float, str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path.name} is not JSON (line {err.lineno}: {err.msg})", path=key
        ) from None
    if not isinstance(items, list):
        raise ConfigError(
            f"{path.name} must hold a list of windows", path=key, hint=", ".join(COLUMNS)
        )
    rows = []
    for n, item in enumerate(items):
        where = f"{key} ({path.name} item {n})"
        if not isinstance(item, dict):
            raise ConfigError(f"expected an object with {', '.join(COLUMNS)}", path=where)
        rows.append((*_window(item, where), where))
    return rows


def _window(row: dict, where: str) -> tuple[str, float, float]:
    for column in COLUMNS:
        if row.get(column) is None or str(row.get(column)).strip() == "":
            raise ConfigError(f"no {column}", path=where)
    device = str(row["device_id"]).strip()
    values = []
    for column in ("start_s", "end_s"):
        cell = row[column]
        try:
            value = float(cell) if not isinstance(cell, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"{column} {cell!r} is not a finite number of seconds", path=where)
        values.append(value)
    start, end = values
    if end <= start:
        raise ConfigError(f"end_s {end:g} must be after start_s {start:g}", path=where)
    return device, start, end


def build(context: SystemsContext) -> Intervals:
    """The ``intervals`` model: the windows of ``fleet.systems.availability.file``."""
    key = "fleet.systems.availability.file"
    path = Path(str(context.systems.availability.file))
    users = {str(u) for u in context.user_ids.tolist()}
    devices, starts, ends = [], [], []
    for device_id, start, end, where in read_interval_file(path, key):
        device = context.device_of_id.get(device_id)
        if device is None:
            if device_id in users:
                continue  # a user of the dataset that is not a device of this fleet
            raise ConfigError(f"device_id {device_id!r} is not a user of the dataset", path=where)
        devices.append(device)
        starts.append(start)
        ends.append(end)
    if not devices:
        raise ConfigError(f"{path.name} gives no window to any device of the fleet", path=key)
    return Intervals.from_rows(
        context.num_devices, np.array(devices), np.array(starts), np.array(ends)
    )
