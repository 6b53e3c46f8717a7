"""Round callbacks: what runs after every training round, in this order.

1. ``Validation``: every ``federated.eval_every`` rounds (and after the last), the labelling
   devices measure what they train (the ``valid_<metric>`` column; NaN in other rounds);
2. ``BestRound``: keeps the best validated round's table, and puts it back when training ends;
3. ``EarlyStopping``: after ``federated.patience`` validations without a gain, records in the
   state that training stopped (a run resumed from its checkpoint trains no more);
4. ``RoundHooks``: the round hooks (``fedrule.algorithm.hooks``: checkpoints, the leakage
   audit, live plots) with the state's checkpointable part.

Each takes the server's state after the round and returns it, changed where it decides
something; ``on_train_end`` runs once when the rounds are over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.hooks import RoundHook
from fedrule.algorithm.labelling import label, label_devices
from fedrule.algorithm.state import ServerState
from fedrule.metrics import ConfigSums


class RoundCallback:
    def on_round_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        return state

    def on_train_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        return state


def validation_key(ctx: ServerContext) -> str:
    """The rounds table's validation column."""
    return f"valid_{ctx.scenario.eval.metric}"


class Validation(RoundCallback):
    """Validation quality measured by the labelling devices, of what each device trains: one
    labelling per payload of the round's assignment, over the labelling devices that hold it
    (in full mode the full configuration; a budgeted fleet's full configuration is what no
    device holds: its rarely trained blocks can fall while the budgets' configurations still
    gain)."""

    def on_round_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        fed, key = ctx.scenario.federated, validation_key(ctx)
        record = {**state.record, key: float("nan")}
        every, round_number = fed.eval_every, state.round
        if every and (round_number % every == 0 or round_number == fed.rounds):
            started = time.perf_counter()
            record[key], state = self.measure(ctx, state)
            record.update(ctx.dp.spent(round_number, state.label_releases))  # and its labels
            record["seconds"] += time.perf_counter() - started
        return state.with_record(record)

    def measure(self, ctx: ServerContext, state: ServerState) -> tuple[float, ServerState]:
        """The mean validation metric over the labelling devices, and the state that counts
        the labellings (each labelling device labels one payload: one release)."""
        assignment = state.assignment
        devices = label_devices(ctx.seed, ctx.fleet.num_devices, ctx.scenario.estimator.label_users)
        what = f"validation {state.round}"
        sums = ConfigSums({}, {})
        state = replace(state, label_releases=state.label_releases + 1)
        for index, config in enumerate(assignment.configs):
            mine = devices[assignment.config_of_device[devices] == index]
            if mine.size:
                table = int(assignment.table_of_config[index])
                part, state = label(
                    ctx, state, config[None], mine, what, table=table, release=False
                )
                sums = sums + part.sums
        metric = ctx.scenario.eval.metric
        return (float(sums.means()[metric][0]) if sums.sums else float("nan")), state


class BestRound(RoundCallback):
    """The best validated round so far; at the end of training its table is kept."""

    def on_round_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        value = state.record[validation_key(ctx)]
        if np.isnan(value):
            return state
        return replace(state, best=state.best.seen(state.round, value, state.table))

    def on_train_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        best = state.best
        if best.table is None:
            return state
        ctx.events.message(
            f"kept the table of round {best.round} ({validation_key(ctx)} {best.value:.4g})"
        )
        return replace(state, table=best.table)


class EarlyStopping(RoundCallback):
    """Stop after ``federated.patience`` validations without a gain (0: never)."""

    def on_round_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        patience = ctx.scenario.federated.patience
        if state.stopped or not patience or state.best.stale < patience:
            return state
        ctx.events.message(
            f"early stop after round {state.round}: no validation gain in {patience} validations"
        )
        return replace(state, stopped=True)


class RoundHooks(RoundCallback):
    """The round hooks, each with the state's checkpointable part."""

    def __init__(self, hooks: Sequence[RoundHook]) -> None:
        self.hooks = list(hooks)

    def on_round_end(self, ctx: ServerContext, state: ServerState) -> ServerState:
        saved = state.round_state(ctx.seed)
        for hook in self.hooks:
            hook(saved)
        return state


def round_callbacks(hooks: Sequence[RoundHook] = ()) -> list[RoundCallback]:
    """The callbacks of a run, in their order."""
    return [Validation(), BestRound(), EarlyStopping(), RoundHooks(hooks)]
