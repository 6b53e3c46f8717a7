"""Distributions of per-device values (speeds, bandwidths, latencies), by name.

A scenario gives a value as a number (every device the same) or as a one-key mapping naming a
distribution and its parameters: ``{lognormal: {median: 500, sigma: 0.5}}``. ``DISTRIBUTIONS``
is the one list of names: the schema checks scenario values against it (which is why this
package sits below ``scenario``), and ``fedrule.systems`` draws from it. A new distribution is
one module with a ``Distribution`` subclass, and its line here.

=========  ===========================  ==================================================
name       parameters                   a device's value
=========  ===========================  ==================================================
fixed      value                        ``value`` (a plain number means the same)
lognormal  median, sigma (0.6)          ``median * exp(sigma * z)``, z ~ N(0, 1)
uniform    low, high                    uniform on [low, high]
normal     mean, std, min (none)        N(mean, std^2) truncated below at min
=========  ===========================  ==================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fedrule.distributions.base import Distribution
from fedrule.distributions.fixed import Fixed
from fedrule.distributions.lognormal import Lognormal
from fedrule.distributions.normal import Normal
from fedrule.distributions.uniform import Uniform
from fedrule.errors import ConfigError, did_you_mean

DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "fixed": Fixed,
    "lognormal": Lognormal,
    "uniform": Uniform,
    "normal": Normal,
}

EXPECTED = "a number, or one of {" + ", ".join(DISTRIBUTIONS) + "} with its parameters"


def parse_distribution(value: Any, path: str) -> Distribution:
    """A scenario value as a distribution: a number is ``Fixed``; ``{name: {params}}`` is the
    named one. Anything else is a one-line ConfigError at ``path``."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a number, got {value!r}", path=path, hint=EXPECTED)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", path=path)
        return Fixed(float(value))
    if not isinstance(value, Mapping):
        raise ConfigError(f"got {value!r}", path=path, hint=EXPECTED)
    if len(value) != 1:
        raise ConfigError(
            f"expected one distribution, got {len(value)} keys ({', '.join(map(str, value))})",
            path=path,
            hint=EXPECTED,
        )
    ((name, params),) = value.items()
    kind = DISTRIBUTIONS.get(str(name))
    if kind is None:
        raise ConfigError(
            f"unknown distribution {name!r}",
            path=path,
            hint=did_you_mean(str(name), DISTRIBUTIONS),
        )
    return kind.from_params(params, f"{path}.{name}")


__all__ = ["DISTRIBUTIONS", "Distribution", "Fixed", "Lognormal", "Normal", "Uniform"]
