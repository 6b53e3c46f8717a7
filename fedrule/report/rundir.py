"""The run folder: written under a hidden temporary name and renamed into place at the end.

An interrupted or failed run leaves no half-written result folder: the temporary folder is
removed, and only a complete run appears under its final name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


class RunDir:
    """A run folder under construction. Use as a context manager; ``commit()`` publishes it."""

    def __init__(self, out_root: str | Path, name: str) -> None:
        self.root = Path(out_root)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{name}-{stamp}"
        final = self.root / base
        suffix = 1
        while final.exists():
            suffix += 1
            final = self.root / f"{base}-{suffix}"
        self.final = final
        self.path = self.root / f".{final.name}.{os.getpid()}.partial"
        self.committed = False

    def __enter__(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.root)
        self.path.mkdir(parents=False, exist_ok=False)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None or not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.file(name)
        path.write_text(text, encoding="utf-8")
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(_jsonable(obj), indent=2) + "\n")

    def commit(self) -> Path:
        """Rename the finished folder into place (atomic on one file system)."""
        os.replace(self.path, self.final)
        self.committed = True
        return self.final


def remove_stale_partials(root: Path) -> None:
    """Remove temporary folders left by runs that were killed (their process is gone)."""
    for path in root.glob(".*.partial"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
