"""The leakage audit (``privacy.audit``): what an honest-but-curious server learns from what it
received, measured every round.

``LeakageAudit.observe`` wraps the run's transport and keeps exactly the replies the server gets
(popularity counts, training updates with the table the server sent for them, test reports)
with the devices each request named. After every training round (a round hook) the attacks of
``fedrule.privacy.attacks`` run on that round's replies, and only then does
``fedrule.privacy.scorer`` compare their guesses with the ground truth, which the engine hands
the audit as a function (the named devices' training items). The mean of each metric over the
round's replies goes into the round's record (``audit_*`` columns of rounds-seed*.csv). After
dispatch, ``test_leakage`` runs the test-rank attack on the test reports (``audit_test`` in
metrics.json). With ``engine.devices_per_node: 1`` every reply is one device's — the
server decides whom a request names, so that is what it can always obtain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from fedrule.data.split import UserItems
from fedrule.model.elastic import decode
from fedrule.privacy import attacks
from fedrule.privacy.scorer import score_guess, score_ranks
from fedrule.protocol import (
    CountReply,
    Message,
    NodeFailure,
    TestReply,
    TrainReply,
    TrainRequest,
)
from fedrule.registry import ATTACKS
from fedrule.scenario.validate import options_from

Truth = Callable[[np.ndarray], np.ndarray]  # devices -> the union of their training items


def chosen_attacks(
    names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[tuple[str, attacks.Attack, Any]]:
    """The registered attacks ``names`` (``privacy.attacks``), each with its options
    (``privacy.attack_options``)."""
    chosen = []
    for name in names:
        attack = cast(attacks.Attack, ATTACKS.get(name))
        chosen.append((name, attack, options_from(attack, (options or {}).get(name))))
    return chosen


class _Observing:
    """A transport that hands the audit every count and training reply it carries."""

    def __init__(self, inner: Any, audit: LeakageAudit) -> None:
        self.inner, self.audit = inner, audit

    def pack(self, devices: np.ndarray) -> list[np.ndarray]:
        return self.inner.pack(devices)

    def exchange(self, requests: Sequence[Message], what: str) -> list[Message | NodeFailure]:
        replies = self.inner.exchange(requests, what)
        decoded: dict[int, np.ndarray] = {}  # payload -> the table it carries, once per exchange
        for request, reply in zip(requests, replies, strict=True):
            if isinstance(reply, CountReply):
                self.audit.seen.append((np.asarray(request.devices), reply, None))  # type: ignore[attr-defined]
            elif isinstance(reply, TrainReply) and isinstance(request, TrainRequest):
                payload = request.payloads[int(np.asarray(request.payload_of_device)[0])]
                if id(payload) not in decoded:
                    decoded[id(payload)] = decode(payload).table.numpy()
                self.audit.seen.append((np.asarray(request.devices), reply, decoded[id(payload)]))
            elif isinstance(reply, TestReply):
                self.audit.tests.append(reply)
        return replies


class LeakageAudit:
    def __init__(
        self,
        truth: Truth,
        n_items: int,
        negatives: int,
        chosen: Sequence[tuple[str, attacks.Attack, Any]],
    ) -> None:
        self.truth = truth
        self.n_items = n_items
        self.negatives = negatives  # the protocol's train.negatives: the server knows it
        self.attacks = list(chosen)  # (name, attack, options), chosen_attacks'
        self.seen: list[tuple[np.ndarray, Message, np.ndarray | None]] = []
        self.tests: list[TestReply] = []
        self.popularity = np.zeros(n_items)  # what the server aggregates from the count

    def observe(self, transport: Any) -> _Observing:
        return _Observing(transport, self)

    def attack(self, reply: Message, sent: np.ndarray | None = None) -> dict[str, attacks.Guess]:
        """Every attack on one reply (``sent``: the table the server sent with the request):
        attacker code, no ground truth."""
        seen: attacks.Counted | attacks.Upload
        if isinstance(reply, CountReply):
            counts = np.asarray(reply.counts)
            if counts.size == 0 and np.asarray(reply.masked).size:  # secure aggregation
                counts = np.asarray(reply.masked)[0].view(np.int64)  # one device's masked vector
            seen, reads = attacks.Counted(counts, self.n_items), "count"
        else:
            assert isinstance(reply, TrainReply)
            rows, update = np.asarray(reply.rows), np.asarray(reply.sum_wdelta)
            sent_rows = np.asarray(sent)[rows]
            upload = (rows, update, sent_rows, self.popularity, self.negatives, self.n_items)
            seen, reads = attacks.Upload(*upload), "upload"
        return {
            name: attack.guess(seen, options)
            for name, attack, options in self.attacks
            if attack.reads == reads
        }

    def __call__(self, state: Any) -> None:
        """Round hook: attack this round's replies, score them, add the means to the record."""
        seen, self.seen = self.seen, []
        for _, reply, _ in seen:
            if isinstance(reply, CountReply) and np.asarray(reply.counts).size:
                self.popularity = self.popularity + reply.counts
        scores: dict[str, list[float]] = {}
        for devices, reply, sent in seen:
            if isinstance(reply, TrainReply) and reply.trained == 0:
                continue
            truth = self.truth(devices)
            for name, guess in self.attack(reply, sent).items():
                for metric, value in score_guess(guess, truth).items():
                    scores.setdefault(f"audit_{name}_{metric}", []).append(value)
        for key, values in scores.items():
            state.record[key] = float(np.nanmean(values)) if values else float("nan")

    def test_leakage(self) -> dict[str, float]:
        """The test-rank attack on every test report the server received (after dispatch):
        what share of devices' test-item ranks it pins exactly, the mean bits it learns about
        each rank, and the share whose test item it places in the head or the tail."""
        if not self.tests:
            return {}
        n_items = self.n_items
        guesses = [attacks.test_rank(r.keys, r.metrics, n_items) for r in self.tests]
        return score_ranks(
            attacks.RankGuess(
                np.concatenate([g.low for g in guesses]),
                np.concatenate([g.high for g in guesses]),
                np.concatenate([g.bucket for g in guesses]),
            ),
            np.concatenate([np.asarray(r.evaluated, dtype=bool) for r in self.tests]),
            n_items,
        )


def training_items(train: UserItems, user_of_device: np.ndarray) -> Truth:
    """The ground truth the engine hands the scorer: the named devices' training items."""

    def truth(devices: np.ndarray) -> np.ndarray:
        return np.unique(train.gather(user_of_device[np.asarray(devices, dtype=np.int64)])[1])

    return truth
