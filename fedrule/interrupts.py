"""SIGINT and SIGTERM: the first one stops the process, later ones wait for its cleanup.

The first signal raises ``KeyboardInterrupt`` (SIGINT) or ``Terminated`` (SIGTERM) in the main
thread, so that ``finally`` blocks shut Ray down and remove the device store and the partial
run folder. A second signal while that cleanup runs is reported on stderr and otherwise
ignored: a second SIGTERM 0.3 s after the first used to end the process in the middle of its
cleanup, without a word, leaving every device's data in the temporary folder. A third one
exits at once (exit code 130 or 143), for a cleanup that hangs; what is left then is the
run's guard's to remove (``fedrule.lifeline``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from fedrule.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []


def install() -> None:
    """Handle SIGINT and SIGTERM with ``on_signal`` (in the main thread; elsewhere a no-op),
    and forget signals of an earlier command run in this process."""
    reset()
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)


def reset() -> None:
    _received.clear()
    Terminated.received = False


def stopping() -> bool:
    """Whether a stop signal has arrived (the process is cleaning up)."""
    return bool(_received)


def on_signal(signum: int, frame: object = None) -> None:
    """The first stop signal raises, the second says that the cleanup goes on, the third
    exits."""
    _received.append(signum)
    name = _NAMES.get(signal.Signals(signum), f"signal {signum}")
    if len(_received) > 2:
        _say(f"{name} a third time: exiting now, without finishing the cleanup")
        os._exit(143 if signal.SIGTERM in _received else 130)
    if len(_received) > 1:
        _say(f"{name} again: still cleaning up (Ray, the device store); a third one exits now")
        return
    _say(f"stopping ({name}): cleaning up first")
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode())  # no buffered I/O in a signal handler
