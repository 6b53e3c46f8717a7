"""The Flower transport against a scripted Grid (no Ray): replies come back in request order,
a node that never answers is dropped after the round timeout and counts as failed, a round in
which no node answers is a one-line error, and messages that hit a restarting worker are
retried."""

import threading

import numpy as np
import pytest
from flwr.app import Error, Message

from fedrule.algorithm.packing import Packer
from fedrule.errors import FedruleError
from fedrule.events import Silent
from fedrule.protocol import CountReply, CountRequest, NodeFailure
from fedrule.transports.flower import server_app
from fedrule.transports.flower.records import from_records, to_records
from fedrule.transports.flower.server_app import FlowerTransport


@pytest.fixture(autouse=True)
def flower_identity():
    """Flower's messages need the identity a ServerApp process has; restore it afterwards."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


class ScriptedGrid:
    """Answers each message by a rule: a count reply, silence, or an error."""

    def __init__(self, rule):
        self.rule, self.sent, self.pending = rule, 0, {}

    def get_node_ids(self):
        return [11, 12, 13]

    def push_messages(self, messages):
        ids = []
        for message in messages:
            self.sent += 1
            message_id = f"m{self.sent}"
            self.pending[message_id] = message
            ids.append(message_id)
        return ids

    def pull_messages(self, ids):
        out = []
        for message_id in list(ids):
            message = self.pending.get(message_id)
            answer = self.rule(message, self.sent)
            if answer is None:
                continue  # silent
            self.pending.pop(message_id)
            reply = Message(answer, reply_to=message)
            out.append(ScriptedReply(reply, message_id))
        return out


class ScriptedReply:
    """A Flower reply as the grid hands it back: the message, answering ``message_id``."""

    def __init__(self, inner: Message, message_id: str) -> None:
        self.inner = inner
        self.metadata = type("Metadata", (), {"reply_to_message_id": message_id})()
        self.content = None if inner.has_error() else inner.content

    def has_error(self) -> bool:
        return self.inner.has_error()

    @property
    def error(self):
        return self.inner.error


def _echo_count(message):
    request = CountRequest.from_wire(from_records(message.content))
    return to_records(CountReply(counts=np.array([int(request.devices[0])])).to_wire())


def _transport(grid, timeout=0.3):
    packer = Packer(np.ones(9), workers=1, per_worker=3, max_devices=3)
    return FlowerTransport(grid, packer, 3, timeout, threading.Event(), Silent())


def _requests():
    return [CountRequest(devices=np.array([d])) for d in (4, 5, 6)]


def test_replies_come_back_in_request_order():
    grid = ScriptedGrid(lambda message, sent: _echo_count(message))
    replies = _transport(grid).exchange(_requests(), "count")
    assert [int(r.counts[0]) for r in replies] == [4, 5, 6]


def test_a_node_that_never_answers_is_dropped_after_the_timeout():
    silent = {5}

    def rule(message, sent):
        request = CountRequest.from_wire(from_records(message.content))
        return None if int(request.devices[0]) in silent else _echo_count(message)

    replies = _transport(ScriptedGrid(rule)).exchange(_requests(), "count")
    assert isinstance(replies[1], NodeFailure) and "no reply within" in replies[1].reason
    assert int(replies[0].counts[0]) == 4 and int(replies[2].counts[0]) == 6


def test_no_node_answering_is_a_one_line_error():
    with pytest.raises(FedruleError, match="engine.round_timeout"):
        _transport(ScriptedGrid(lambda message, sent: None)).exchange(_requests(), "count")


def test_messages_that_hit_a_restarting_worker_are_retried(monkeypatch):
    monkeypatch.setattr(server_app, "RETRY_WAIT_S", 0.0)
    calls = {"n": 0}

    def rule(message, sent):
        calls["n"] += 1
        if sent <= 3 and calls["n"] == 2:  # the second message of the first push
            return Error(code=1, reason="ActorUnavailableError: the actor is restarting")
        return _echo_count(message)

    replies = _transport(ScriptedGrid(rule)).exchange(_requests(), "count")
    assert [int(r.counts[0]) for r in replies] == [4, 5, 6]


def test_more_cohorts_than_nodes_go_out_as_nodes_free_up():
    """Seven cohorts on three nodes: never more than three messages in flight, each to a node
    without one, and every reply in request order."""
    most = {"in_flight": 0}

    class CountingGrid(ScriptedGrid):
        def push_messages(self, messages):
            busy = {m.metadata.dst_node_id for m in self.pending.values()}
            assert not busy & {m.metadata.dst_node_id for m in messages}
            ids = super().push_messages(messages)
            most["in_flight"] = max(most["in_flight"], len(self.pending))
            return ids

    grid = CountingGrid(lambda message, sent: _echo_count(message))
    requests = [CountRequest(devices=np.array([d])) for d in range(10, 17)]
    replies = _transport(grid).exchange(requests, "count")
    assert [int(r.counts[0]) for r in replies] == list(range(10, 17))
    assert most["in_flight"] == 3 and grid.sent == 7
