"""When a device is online in simulated time: the one interface every availability model has.

Times are simulated seconds (floats) on the clock of ``fedrule.systems.clock``. Windows are
half-open: a device online on [start, end) is offline at ``end``. Every method is vectorised:
``devices`` is an array of device numbers and ``t`` a time or an array of one time per device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np


class Availability(Protocol):
    num_devices: int

    def online(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        """Per device: is it online at ``t``? (bool)"""
        ...

    def online_until(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        """Per device: when it next goes offline (``inf``: never); ``t`` for an offline one."""
        ...

    def online_from(self, devices: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        """Per device: the first time >= ``t`` it is online (``inf``: never again)."""
        ...


def settle_online(
    online: Callable[[np.ndarray, np.ndarray], np.ndarray], devices: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """``t`` moved up by the fewest floating-point steps at which each device is online (a
    window's start added to a period's start can round to a time just before it); ``inf``
    stays."""
    t = t.copy()
    check = np.flatnonzero(np.isfinite(t))
    for _ in range(16):
        check = check[~online(devices[check], t[check])]
        if not check.size:
            return t
        t[check] = np.nextafter(t[check], np.inf)
    raise ArithmeticError("a window's start cannot be reached in floating point")


def times_of(devices: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``devices`` as int64 and ``t`` broadcast to one float64 time per device."""
    devices = np.asarray(devices, dtype=np.int64)
    return devices, np.broadcast_to(np.asarray(t, dtype=np.float64), devices.shape).copy()
