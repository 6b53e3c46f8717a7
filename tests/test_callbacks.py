"""Round callbacks (``fedrule.algorithm.callbacks``): best-round tracking and early stopping
decide in the server's state, so a run killed after training (at a phase boundary, by a phase
observer) resumes from its checkpoint to the same results without training again."""

from __future__ import annotations

import numpy as np
import pytest

from fedrule.algorithm.callbacks import BestRound, EarlyStopping, Validation, round_callbacks
from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.state import ServerState
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def _context(**patch) -> ServerContext:
    scenario = scenario_from_dict(fleet_scenario(**patch))
    return ServerContext(scenario, 0, None, None, Silent(), None, None)  # what they read


def test_the_best_round_and_early_stopping_decide_in_the_state():
    """Validations 0.1, 0.3, 0.2, 0.25 with patience 2: round 2 is the best, and two
    validations without a gain stop training after round 4; its table is kept at the end."""
    ctx = _context(federated__eval_every=1, federated__patience=2, federated__rounds=6)
    state = ServerState(table=np.zeros((1, 1), np.float32))
    stops = []
    for round_number, value in enumerate([0.1, 0.3, 0.2, 0.25], start=1):
        table = np.full((1, 1), round_number, np.float32)
        record = {"round": round_number, "valid_ndcg@10": value}
        state = ServerState(
            table=table, round=round_number, best=state.best, history=(*state.history, record)
        )
        for callback in (BestRound(), EarlyStopping()):
            state = callback.on_round_end(ctx, state)
        stops.append(state.stopped)
    assert stops == [False, False, False, True]
    assert (state.best.round, state.best.value, state.best.stale) == (2, 0.3, 2)
    assert state.round_state(0).stopped  # what a checkpoint of this round holds
    assert BestRound().on_train_end(ctx, state).table[0, 0] == 2
    unvalidated = state.with_record({"round": 5, "valid_ndcg@10": float("nan")})
    assert BestRound().on_round_end(ctx, unvalidated).best is unvalidated.best


def test_the_callbacks_run_in_their_order():
    kinds = [type(c).__name__ for c in round_callbacks()]
    assert kinds == ["Validation", "BestRound", "EarlyStopping", "RoundHooks"]


class Killed(Exception):
    pass


class KillAt:
    """A phase observer that kills the run when a phase of this name ends."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_phase_end(self, name, requests, replies, result) -> None:
        if name == self.name:
            raise Killed


def _resumed_as_whole(tmp_path, **patch):
    raw = fleet_scenario(engine__transport="inprocess", engine__checkpoint_every=1, **patch)
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    whole = run_federated_seed(scenario, split, 0, Silent()).results
    with pytest.raises(Killed):  # after training: the last checkpoint is of the last round
        run_federated_seed(
            scenario, split, 0, Silent(), checkpoint_dir=tmp_path, observers=[KillAt("labelling")]
        )
    resumed = run_federated_seed(scenario, split, 0, Silent(), checkpoint_dir=tmp_path)
    assert resumed.resumed_after_round == len(whole.rounds)
    res = resumed.results
    assert [r["loss"] for r in res.rounds] == [r["loss"] for r in whole.rounds]
    assert res.best_round == whole.best_round
    np.testing.assert_array_equal(res.table, whole.table)
    np.testing.assert_array_equal(res.devices["metrics"], whole.devices["metrics"])
    return whole


def test_a_run_killed_after_its_last_round_resumes_to_the_same_results(tmp_path):
    whole = _resumed_as_whole(tmp_path, federated__eval_every=1)
    assert whole.best_round > 0  # the best table is put back after no round at all


def test_a_run_killed_after_an_early_stop_resumes_without_training_again(tmp_path, monkeypatch):
    scripted = {1: 0.1, 2: 0.3, 3: 0.2, 4: 0.25}  # no gain in rounds 3 and 4: stop after 4

    def measure(self, ctx, state):
        return scripted[state.round], state  # a resumed run asking again: KeyError

    monkeypatch.setattr(Validation, "measure", measure)
    patch = {"federated__rounds": 6, "federated__eval_every": 1, "federated__patience": 2}
    whole = _resumed_as_whole(tmp_path, **patch)
    assert len(whole.rounds) == 4 and whole.best_round == 2
