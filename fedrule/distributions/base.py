"""What every distribution of a per-device value is: a quantile function over (0, 1).

A device's value is ``quantile(u)`` of one uniform ``u`` drawn from the device's own random
stream (``fedrule.systems.draws``), so that it depends on the seed and the device number only,
never on the fleet's size or order, and a value is exact to reproduce from its uniform.
Parameters arrive as the scenario's mapping (``{median: 500, sigma: 0.5}``) and are checked
here with one-line errors that name the dotted key.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from fedrule.errors import ConfigError, did_you_mean


class Distribution(ABC):
    """A distribution of one per-device value (``name`` is its key in the scenario)."""

    name: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[dict[str, float]] = {}

    @classmethod
    def from_params(cls, params: Any, path: str) -> Distribution:
        """The distribution with ``params`` (a mapping of numbers), or a ConfigError at path."""
        return cls(**read_params(params, path, cls.required, cls.optional))

    @abstractmethod
    def quantile(self, u: np.ndarray) -> np.ndarray:
        """The values at the probabilities ``u`` (each in (0, 1)), float64."""

    @property
    @abstractmethod
    def lower_bound(self) -> float:
        """The smallest value the distribution can give (its support's infimum)."""

    @property
    def positive(self) -> bool:
        """Are all its values > 0 (a speed or a bandwidth may be drawn from it)?"""
        return self.lower_bound > 0


def read_params(
    params: Any, path: str, required: tuple[str, ...], optional: Mapping[str, float]
) -> dict[str, float]:
    """The numbers of a distribution's mapping: every required key, the optional ones with
    their defaults; unknown keys, missing keys and non-finite values are one-line errors."""
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"expected a mapping of parameters, got {params!r}",
            path=path,
            hint="keys: " + ", ".join([*required, *optional]),
        )
    known = (*required, *optional)
    values: dict[str, float] = {}
    for key, value in params.items():
        if key not in known:
            raise ConfigError(
                "unknown parameter", path=f"{path}.{key}", hint=did_you_mean(key, known)
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {value!r}", path=f"{path}.{key}")
        if not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", path=f"{path}.{key}")
        values[str(key)] = float(value)
    for key in required:
        if key not in values:
            raise ConfigError("missing required parameter", path=f"{path}.{key}")
    return {**optional, **values}


def require(condition: bool, message: str, path: str) -> None:
    """A parameter check: a ConfigError at ``path`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message, path=path)
