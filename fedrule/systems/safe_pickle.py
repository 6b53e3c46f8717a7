"""Reading pickles from strangers: only plain containers and numbers, never code.

``pickle.load`` runs whatever callable a file names (``os.system`` included). FedScale ships its
device traces as pickles; ``load_plain`` reads them with an unpickler whose ``find_class``
refuses every global except the builtin containers and numbers, so a hostile file is a one-line
error instead of code run on the user's machine.
"""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path
from typing import Any

from fedrule.errors import ConfigError

ALLOWED = frozenset(
    (module, name)
    for module in ("builtins", "__builtin__")  # protocols 0-2 write Python 2's name
    for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str")
)
"""The globals a plain pickle may name (sets and frozensets are pickled through them)."""


class Refused(pickle.UnpicklingError):
    """A pickle that names a global (code) or a persistent reference."""


class PlainUnpickler(pickle.Unpickler):
    """An unpickler of dicts, lists, tuples, sets, strings and numbers only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return getattr(builtins, name)
        raise Refused(f"it names {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("it holds a persistent reference")


def load_plain(path: Path, key: str) -> Any:
    """The content of the pickle at ``path``, if it holds only plain data; a ConfigError at
    ``key`` naming the file otherwise (missing, truncated, not a pickle, or naming code)."""
    if not path.is_file():
        raise ConfigError("no such file", path=key, hint=str(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {path.name} ({err.strerror})", path=key) from None
    try:
        return PlainUnpickler(io.BytesIO(data)).load()
    except Refused as err:
        raise ConfigError(
            f"{path.name} is refused: {err}",
            path=key,
            hint="only pickles of plain dicts, lists and numbers are read",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise ConfigError(f"{path.name} is not a readable pickle ({err})", path=key) from None
