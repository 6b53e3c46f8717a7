"""Profiles from the device trace (``fleet.trace``): optional columns ``examples_per_second``,
``download_mbps``, ``upload_mbps`` and ``latency_s`` beside ``budget``. An empty cell, or a
column the file lacks, takes the device's tier value (``fleet.tiers[]``, drawn as the ``tiers``
source draws it); a cell that is not a number > 0 (>= 0 for latency) is a one-line error naming
the file and line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from fedrule.errors import ConfigError
from fedrule.systems.context import SystemsContext
from fedrule.systems.profiles import QUANTITIES, RATES
from fedrule.systems.sources.tiers import from_tiers

KEY = "fleet.trace"


def _cell(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{column} {text!r} is not a number", path=where) from None
    if not math.isfinite(value):
        raise ConfigError(f"{column} {text!r} is not a finite number", path=where)
    if column in RATES and value <= 0:
        raise ConfigError(f"{column} {text!r} must be > 0", path=where)
    if column not in RATES and value < 0:
        raise ConfigError(f"{column} {text!r} must be >= 0", path=where)
    return value


def build(context: SystemsContext) -> dict:
    path = Path(str(context.trace))
    if not path.is_file():
        raise ConfigError("no such trace file", path=KEY, hint=str(path))
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = [c for c in QUANTITIES if c in (reader.fieldnames or [])]
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"trace {path.name} cannot be read ({err})", path=KEY) from None
    values = from_tiers(context)
    for line, row in enumerate(rows, start=2):
        device = context.device_of_id.get((row.get("device_id") or "").strip())
        if device is None:  # fleet_from_trace has refused unknown ids; not in this fleet
            continue
        where = f"{KEY} ({path.name} line {line})"
        for column in columns:
            text = (row.get(column) or "").strip()
            if text:
                values[column][device] = _cell(text, column, where)
    return values
