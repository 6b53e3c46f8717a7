"""SIGINT and SIGTERM: the first one stops the process, later ones wait for its cleanup.

The first signal raises ``KeyboardInterrupt`` (SIGINT) or ``Terminated`` (SIGTERM) in the main
thread, so that ``finally`` blocks shut Ray down and remove the device store and the partial
run folder. A second signal while that cleanup runs is reported on stderr and otherwise
ignored: a second SIGTERM 0.3 s after the first used to end the process in the middle of its
cleanup, without a word, leaving every device's data in the temporary folder. A third one
exits at once (exit code 130 or 143), for a cleanup that hangs; what is left then is the
run's guard's to remove (``fedrule.lifeline``).

A signal can land while the main thread runs a callback whose exceptions Python does not
propagate (an ``os.register_at_fork`` hook when Ray forks, a ``__del__``, a weakref callback):
Python would print the raised ``Terminated`` as an ignored exception, with a traceback, and the
run would go on as if no signal had come. ``sys.unraisablehook`` catches that case and has the
same exception raised again in the main thread once the callback has returned
(``_thread.interrupt_main`` from a helper thread), without a traceback and without counting a
second signal.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

from fedrule.errors import Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []
_redeliver: list[int] = []  # a first signal whose exception Python swallowed, raised again


def install() -> None:
    """Handle SIGINT and SIGTERM with ``on_signal`` (in the main thread; elsewhere a no-op),
    and forget signals of an earlier command run in this process."""
    reset()
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)
        if sys.unraisablehook is not _unraisable:
            _previous_hook[0] = sys.unraisablehook
            sys.unraisablehook = _unraisable


def reset() -> None:
    _received.clear()
    _redeliver.clear()
    Terminated.received = False


_previous_hook: list[Any] = [sys.unraisablehook]


def _unraisable(unraisable: Any) -> None:
    """A stop signal's exception that Python could not raise (see the module's docstring):
    raise it again in the main thread instead of printing it."""
    first = isinstance(unraisable.exc_value, Terminated | KeyboardInterrupt) and len(_received) == 1
    if first and not _redeliver:
        _redeliver.append(_received[0])
        _thread.start_new_thread(_interrupt_soon, (_received[0],))  # not waited for
        return
    _previous_hook[0](unraisable)


def stopping() -> bool:
    """Whether a stop signal has arrived (the process is cleaning up)."""
    return bool(_received)


def _interrupt_soon(signum: int) -> None:
    """From a helper thread: the main thread gets ``signum`` again once the callback that
    swallowed its exception has returned."""
    time.sleep(0.01)
    _thread.interrupt_main(signum)


def on_signal(signum: int, frame: object = None) -> None:
    """The first stop signal raises, the second says that the cleanup goes on, the third
    exits."""
    if _redeliver and _redeliver[0] == signum and len(_received) == 1:  # raised again
        _redeliver.pop()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
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
