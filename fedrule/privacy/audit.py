"""The leakage audit (``privacy.audit``): what an honest-but-curious server learns from what it
received, measured every round.

``LeakageAudit.observe`` wraps the run's transport and keeps exactly the replies the server gets
(popularity counts and training updates) with the devices each request named. After every
training round (a round hook) the attacks of ``fedrule.privacy.attacks`` run on that round's
replies, and only then does ``fedrule.privacy.scorer`` compare their guesses with the ground
truth, which the engine hands the audit as a function (the named devices' training items). The
mean of each metric over the round's replies goes into the round's record (``audit_*`` columns
of rounds-seed*.csv). With ``engine.devices_per_node: 1`` every reply is one device's — the
server decides whom a request names, so that is what it can always obtain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fedrule.data.split import UserItems
from fedrule.privacy import attacks
from fedrule.privacy.scorer import score_guess
from fedrule.protocol import CountReply, Message, NodeFailure, TrainReply

Truth = Callable[[np.ndarray], np.ndarray]  # devices -> the union of their training items


class _Observing:
    """A transport that hands the audit every count and training reply it carries."""

    def __init__(self, inner: Any, audit: LeakageAudit) -> None:
        self.inner, self.audit = inner, audit

    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        return self.inner.pack(devices)

    def exchange(self, requests: Sequence[Message], what: str) -> list[Message | NodeFailure]:
        replies = self.inner.exchange(requests, what)
        for request, reply in zip(requests, replies, strict=True):
            if isinstance(reply, CountReply | TrainReply):
                self.audit.seen.append((np.asarray(request.devices), reply))  # type: ignore[attr-defined]
        return replies


class LeakageAudit:
    def __init__(self, truth: Truth, n_items: int) -> None:
        self.truth = truth
        self.n_items = n_items
        self.seen: list[tuple[np.ndarray, Message]] = []
        self.popularity = np.zeros(n_items)  # what the server aggregates from the count

    def observe(self, transport: Any) -> _Observing:
        return _Observing(transport, self)

    def attack(self, reply: Message) -> dict[str, attacks.Guess]:
        """Every attack on one reply: attacker code, no ground truth."""
        if isinstance(reply, CountReply):
            counts = np.asarray(reply.counts)
            if counts.size == 0 and np.asarray(reply.masked).size:  # secure aggregation
                counts = np.asarray(reply.masked)[0].view(np.int64)  # one device's masked vector
            return {"count": attacks.count_membership(counts)}
        assert isinstance(reply, TrainReply)
        rows, update = np.asarray(reply.rows), np.asarray(reply.sum_wdelta)
        return {
            "touched": attacks.touched_rows(rows, self.n_items),
            "norm": attacks.update_norms(rows, update, self.n_items),
            "svd": attacks.singular_vector(rows, update, self.popularity, self.n_items),
        }

    def __call__(self, state: Any) -> None:
        """Round hook: attack this round's replies, score them, add the means to the record."""
        seen, self.seen = self.seen, []
        for _, reply in seen:
            if isinstance(reply, CountReply) and np.asarray(reply.counts).size:
                self.popularity = self.popularity + reply.counts
        scores: dict[str, list[float]] = {}
        for devices, reply in seen:
            if isinstance(reply, TrainReply) and reply.trained == 0:
                continue
            truth = self.truth(devices)
            for name, guess in self.attack(reply).items():
                for metric, value in score_guess(guess, truth).items():
                    scores.setdefault(f"audit_{name}_{metric}", []).append(value)
        for key, values in scores.items():
            state.record[key] = float(np.nanmean(values)) if values else float("nan")


def training_items(train: UserItems, user_of_device: np.ndarray) -> Truth:
    """The ground truth the engine hands the scorer: the named devices' training items."""

    def truth(devices: np.ndarray) -> np.ndarray:
        return np.unique(train.gather(user_of_device[np.asarray(devices, dtype=np.int64)])[1])

    return truth
