"""Byte sizes and memory budgets.

A budget is written as an absolute size (``262144``, ``256KiB``, ``1.5MB``, ``4MiB``) or as a
share of the full item-embedding table (``0.25``, ``1/16``, ``6.25%``; any plain number <= 1).
Absolute sizes are exact integers of bytes; shares are resolved against a table size later.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from fedrule.errors import BudgetError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]+)\s*$")
_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")
_EXPECTED = (
    "expected bytes like 262144, 256KiB, 1.5MB, or a share of the full table like 0.25, 1/16"
)


@dataclass(frozen=True)
class Budget:
    """A memory budget: exactly one of ``num_bytes`` (absolute) or ``share`` (of the full table)."""

    text: str
    num_bytes: int | None = None
    share: Fraction | None = None

    def __post_init__(self) -> None:
        if (self.num_bytes is None) == (self.share is None):
            raise ValueError(f"budget {self.text!r} needs exactly one of num_bytes and share")

    def resolve(self, full_table_bytes: int) -> int:
        """The budget in bytes, given the byte size of the full item-embedding table."""
        if self.share is None:
            return int(self.num_bytes)
        return int(Fraction(full_table_bytes) * self.share)

    def __str__(self) -> str:
        return self.text


def parse_budget(value: object, *, path: str | None = None) -> Budget:
    """Parse a budget from YAML/CLI (int, float or string); raise BudgetError naming ``path``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BudgetError(f"got {value!r}", path=path, hint=_EXPECTED)
    text = str(value).strip()
    if isinstance(value, float) and not math.isfinite(value):
        raise BudgetError(f"got {text}", path=path, hint=_EXPECTED)
    if isinstance(value, int | float):
        number = Fraction(str(value))
        return _from_number(number, text, path)
    if m := _RATIO.match(text):
        num, den = int(m.group(1)), int(m.group(2))
        if den == 0 or num == 0 or num > den:
            raise BudgetError(f"share {text!r} must lie in (0, 1]", path=path, hint=_EXPECTED)
        return Budget(text=text, share=Fraction(num, den))
    if m := _PERCENT.match(text):
        share = Fraction(m.group(1)) / 100
        if not 0 < share <= 1:
            raise BudgetError(f"share {text!r} must lie in (0%, 100%]", path=path, hint=_EXPECTED)
        return Budget(text=text, share=share)
    if m := _SIZE.match(text):
        number, unit = Fraction(m.group(1)), m.group(2).lower()
        if unit not in _UNITS:
            raise BudgetError(f"unknown unit {m.group(2)!r} in {text!r}", path=path, hint=_EXPECTED)
        if unit == "":
            return _from_number(number, text, path)
        return Budget(text=text, num_bytes=_whole_bytes(number * _UNITS[unit], text, path))
    raise BudgetError(f"cannot read {text!r} as a budget", path=path, hint=_EXPECTED)


def _from_number(number: Fraction, text: str, path: str | None) -> Budget:
    if number <= 0:
        raise BudgetError(f"budget {text!r} must be positive", path=path, hint=_EXPECTED)
    if number <= 1:
        return Budget(text=text, share=number)
    return Budget(text=text, num_bytes=_whole_bytes(number, text, path))


MAX_BUDGET_BYTES = 2**50  # 1 PiB: anything larger is a typo, not a device


def _whole_bytes(number: Fraction, text: str, path: str | None) -> int:
    if number.denominator != 1:
        raise BudgetError(f"{text!r} is not a whole number of bytes", path=path, hint=_EXPECTED)
    if number > MAX_BUDGET_BYTES:
        raise BudgetError(
            f"{text!r} is more than 1 PiB", path=path, hint="a device budget; did you mean a share?"
        )
    return int(number)


def format_bytes(num_bytes: float) -> str:
    """Human-readable binary size: 262144 -> '256.0 KiB'."""
    value = float(num_bytes)
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in ("KiB", "MiB"):
        value /= 1024
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"
