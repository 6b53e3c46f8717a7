"""Verification (``search.verify``): each budget's best candidate by real validation quality.

The candidates (``fedrule.search.verify``: the searched configurations, the uniform ones and,
in budgeted mode, what each budget's devices trained before the first estimator) are labelled
on the verifying devices, once on all of them or (``search.verify_per_budget``) once per budget
on that budget's devices, each device refitted to each candidate as on dispatch.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fedrule.algorithm.context import ServerContext
from fedrule.algorithm.labelling import label, tail_heads, verify_devices
from fedrule.algorithm.state import ServerState
from fedrule.search import customize, verify
from fedrule.search.base import SearchResult
from fedrule.search.labels import objective_labels


def verified(
    ctx: ServerContext, state: ServerState, found: dict[int, SearchResult]
) -> tuple[dict[int, SearchResult], ServerState]:
    """Each budget's chosen configuration, and the state that counts the labellings."""
    configs = verify.candidates(
        ctx.codec, found, start_configs(ctx, found), popularity=ctx.popularity
    )
    search = ctx.scenario.search
    devices = verify_devices(
        ctx.seed,
        ctx.fleet.num_devices,
        ctx.scenario.estimator.label_users,
        held_out=search.verify_on == "held-out",
        most=search.verify_users,
    )
    ctx.events.message(
        f"verifying {len(configs)} candidate configurations on {devices.size} devices' "
        "validation items"
    )
    heads = tail_heads(ctx)
    if search.verify_per_budget:
        chosen, state = _verified_per_budget(ctx, state, found, configs, devices, heads)
    else:
        labels, state = label(ctx, state, configs, devices, "verification", heads)
        if not labels.sums.sums:
            return found, state
        measured = objective_labels(labels.sums, ctx.scenario.eval.metric, search.tail_weight)
        chosen = verify.choose(ctx.codec, found, configs, measured, state.estimator)
    spent = ctx.dp.spent(len(state.history), state.label_releases)
    return chosen, replace(state, label_report={**state.label_report, **spent})


def start_configs(
    ctx: ServerContext, found: dict[int, SearchResult]
) -> dict[int, np.ndarray] | None:
    """Budgeted mode: what each budget's devices trained before the first estimator."""
    fed = ctx.scenario.federated
    if fed.mode != "budgeted":
        return None
    how = fed.start_config
    return {b: customize.start_config(ctx.codec, b, ctx.popularity, how) for b in found}


def _verified_per_budget(
    ctx: ServerContext,
    state: ServerState,
    found: dict[int, SearchResult],
    configs: np.ndarray,
    devices: np.ndarray,
    heads: np.ndarray | None,
) -> tuple[dict[int, SearchResult], ServerState]:
    """``search.verify_per_budget``: each budget's candidates that fit, measured on the
    verifying devices of that budget, each device refitted to each candidate as on dispatch
    (one labelling per budget). A budget none of whose devices measured keeps its search's
    result."""
    sizes = np.array([ctx.codec.memory_bytes(c) for c in configs])
    search, metric = ctx.scenario.search, ctx.scenario.eval.metric
    chosen: dict[int, SearchResult] = {}
    state = replace(state, label_releases=state.label_releases + 1)  # one budget per device
    for budget in sorted(found):
        mine = devices[ctx.fleet.budget_bytes[devices] == budget]
        fits = np.flatnonzero(sizes <= budget)
        measured = np.full(len(configs), np.nan)
        if mine.size and fits.size:
            what = f"verification at {budget} bytes"
            labels, state = label(
                ctx, state, configs[fits], mine, what, heads, as_dispatched=True, release=False
            )
            if labels.sums.sums:
                measured[fits] = objective_labels(labels.sums, metric, search.tail_weight)
        if np.isnan(measured).all():
            chosen[budget] = found[budget]
            continue
        one = {budget: found[budget]}
        chosen |= verify.choose(ctx.codec, one, configs, measured, state.estimator)
    return chosen, state
