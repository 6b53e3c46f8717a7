"""Checkpoints of a federated seed: a round hook that saves, and the loader that resumes.

A checkpoint holds the server's ``RoundState`` (item table, server-step state, round, stamp,
best round, estimator, records, early stop), a snapshot of the device state store (every
device's user vector), and how many checkpoints the seed has written so far. It is written
atomically (a temporary file renamed into place; a failed write removes its temporary file and
leaves the previous checkpoint) and read back with ``torch.load(weights_only=True)``: plain
tensors, numbers and strings, no code.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedrule import killpoints
from fedrule.algorithm.hooks import RoundState
from fedrule.device.state import DeviceStateStore
from fedrule.errors import FedruleError, disk_error
from fedrule.pids import alive

FILE = "current.pt"


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint restores: the server's state, every device's user vector, and the
    checkpoints written so far (a resumed seed counts on from them)."""

    state: RoundState
    users: np.ndarray
    saves: int = 0
    seconds: float = 0.0


@dataclass
class Checkpointer:
    """Saves every ``every`` rounds, after the last round and after the round after which early
    stopping ended training, into ``folder``; ``saves`` and ``seconds`` count on from the
    checkpoint resumed from."""

    folder: Path
    every: int
    last_round: int
    state_store: DeviceStateStore
    seconds: float = 0.0  # time spent writing checkpoints
    saves: int = 0

    @classmethod
    def resuming(
        cls,
        folder: Path,
        every: int,
        last_round: int,
        state_store: DeviceStateStore,
        resumed: Checkpoint | None,
    ) -> Checkpointer:
        if resumed is None:
            return cls(folder, every, last_round, state_store)
        return cls(folder, every, last_round, state_store, resumed.seconds, resumed.saves)

    def __call__(self, state: RoundState) -> None:
        if state.round % self.every and state.round != self.last_round and not state.stopped:
            return
        started = time.perf_counter()
        payload = {
            "state": state.to_saveable(),
            "users": torch.from_numpy(self.state_store.snapshot()),
            "saves": self.saves + 1,
            "seconds": self.seconds + (time.perf_counter() - started),
        }
        save_atomic(payload, self.folder / FILE)
        self.seconds += time.perf_counter() - started
        self.saves += 1
        killpoints.reached("round checkpoint")


def save_atomic(obj: object, path: Path) -> None:
    """Write ``obj`` to ``path`` through a temporary file renamed into place. A failed write
    (a full disk) removes the temporary file and leaves the previous file readable, so the
    partial run stays resumable; it raises a one-line ``DiskError`` naming the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:  # a file object: torch reports the OSError behind it
            torch.save(obj, handle)
        killpoints.reached("checkpoint write")
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        then = f"continue with: fedrule run --resume {path.parent.parent}"
        failure = disk_error(exc, path.parent.parent, "the checkpoint", then=then)
        if failure is not None:
            raise failure from None
        raise


def load_checkpoint(folder: Path, seed: int) -> Checkpoint | None:
    """The checkpoint saved for ``seed`` in ``folder``, if any. Temporary files of killed
    writers are removed."""
    remove_stale_temporaries(folder)
    path = folder / FILE
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        state = RoundState.from_saveable(saved["state"])
        users = saved["users"].numpy()
    except Exception as err:
        raise FedruleError(
            f"the checkpoint cannot be read ({type(err).__name__})", path=str(path)
        ) from None
    if state.seed != seed:
        return None
    return Checkpoint(state, users, int(saved.get("saves", 0)), float(saved.get("seconds", 0.0)))


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary checkpoint files of writers that were killed (their process is
    gone)."""
    for tmp in folder.glob(f".{FILE}.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def clear_checkpoint(folder: Path) -> None:
    (folder / FILE).unlink(missing_ok=True)
