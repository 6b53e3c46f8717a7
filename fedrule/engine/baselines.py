"""Item-table formats at equal bytes, beside RULE in the centralised budget table.

For every budget of ``search.budgets``, each method of ``references.baselines`` makes the payload
a device of that budget would receive (an ``ItemCodec``: header and sizes counted), decodes it
as the device would and measures its test quality with the trained user vectors:

- ``full`` (method ``full-prefix``): plain BPR-MF at full size, truncated to the largest uniform
  prefix of blocks that fits (the elastic codec with a uniform configuration): naive deployment;
- ``hashing``: BPR-MF whose item ``i`` uses row ``h(i)`` of a table with as many rows of d as fit;
- ``qr``: BPR-MF with quotient-remainder item embeddings (product of two tables) that fit;
- ``popularity``: the training-popularity ranking, no model: the floor.

Hashing and QR are trained per budget with the plain model's objective, negatives and epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import torch

from fedrule import seeds
from fedrule.algorithm.methods import get_method
from fedrule.algorithm.methods.compressed import Compressed
from fedrule.data.split import SplitData
from fedrule.errors import BudgetError
from fedrule.events import Events
from fedrule.model.codec import ReceivedTable
from fedrule.model.codecs.popularity import PopularityCodec
from fedrule.model.codecs.train import train_codec
from fedrule.model.elastic import ElasticLayout
from fedrule.model.evaluate import evaluate_ranking
from fedrule.model.mf import ElasticMF
from fedrule.names import BASELINES
from fedrule.scenario.schema import Scenario
from fedrule.search import customize

METHOD_NAMES = dict(zip(BASELINES, ("full-prefix", "hashing", "qr", "popularity"), strict=True))
"""The method a row of each baseline of ``fedrule.names.BASELINES`` names, in that order."""


@dataclass(frozen=True)
class PlainModel:
    """The plain BPR-MF reference of the run: model, layout and training seconds."""

    model: ElasticMF
    layout: ElasticLayout
    seconds: float


def baseline_rows(
    scenario: Scenario,
    split: SplitData,
    seed: int,
    is_head: torch.Tensor,
    events: Events,
    keys: tuple[str, ...],
    plain: PlainModel | None,
) -> list[dict]:
    """One row per (baseline, budget) that fits: bytes received, training seconds, ``keys``."""
    full_bytes = split.n_items * scenario.model.dim * scenario.model.bytes_per_value
    budgets = [(b.text, b.resolve(full_bytes)) for b in scenario.search.budgets]
    rows: list[dict] = []
    for name in scenario.references.baselines:
        if name == "full":
            if plain is None:
                raise ValueError("the full-prefix baseline needs the plain model")
            rows += _prefix_rows(plain, split, scenario, is_head, budgets, keys)
        elif name == "popularity":
            rows += _popularity_rows(split, scenario, is_head, budgets, keys)
        else:
            for text, budget_bytes in budgets:
                row = _trained_row(name, scenario, split, seed, is_head, events, budget_bytes)
                if row is not None:
                    rows.append(_row(name, text, budget_bytes, keys, **row))
    return rows


def evaluate_received(
    received: ReceivedTable,
    users: torch.Tensor,
    split: SplitData,
    scenario: Scenario,
    is_head: torch.Tensor,
) -> dict[str, float]:
    """Test metrics of a device-side scorer with the users' vectors (n_users x d)."""
    sums = evaluate_ranking(
        lambda rows: received.score(users[rows]),
        split,
        target="test",
        ks=scenario.eval.ks,
        item_is_head=is_head,
        batch_users=scenario.eval.batch_users,
    )
    return sums.means()


def _prefix_rows(
    plain: PlainModel,
    split: SplitData,
    scenario: Scenario,
    is_head: torch.Tensor,
    budgets: list[tuple[str, int]],
    keys: tuple[str, ...],
) -> list[dict]:
    layout, rows = plain.layout, []
    for text, budget_bytes in budgets:
        if budget_bytes < layout.min_bytes():
            continue
        config = customize.uniform_fit(layout, budget_bytes)
        payload = layout.encode(plain.model.item.detach(), config)
        test = evaluate_received(
            layout.decode(payload), plain.model.user.detach(), split, scenario, is_head
        )
        dim = int(config[0].sum()) * layout.block_dim
        rows.append(
            _row("full", text, budget_bytes, keys, len(payload), plain.seconds, test, dim=dim)
        )
    return rows


def _popularity_rows(
    split: SplitData,
    scenario: Scenario,
    is_head: torch.Tensor,
    budgets: list[tuple[str, int]],
    keys: tuple[str, ...],
) -> list[dict]:
    started = time.perf_counter()
    codec = PopularityCodec(split.n_items)
    payload = codec.encode(split.item_popularity(), codec.full_config())
    seconds = time.perf_counter() - started
    users = torch.zeros(split.n_users, 1)  # the scores do not depend on the user
    test = evaluate_received(codec.decode(payload), users, split, scenario, is_head)
    return [
        _row("popularity", text, budget_bytes, keys, len(payload), seconds, test)
        for text, budget_bytes in budgets
        if len(payload) <= budget_bytes
    ]


def _trained_row(
    name: str,
    scenario: Scenario,
    split: SplitData,
    seed: int,
    is_head: torch.Tensor,
    events: Events,
    budget_bytes: int,
) -> dict | None:
    """Train the hashed or QR model of one budget and measure its payload on test: the table
    its federated method fits to the budget (``Compressed.codec_at``), a hash drawn per
    budget."""
    method = cast(Compressed, get_method(METHOD_NAMES[name]))
    rng = seeds.server_rng(seed, seeds.HASH_ITEMS, budget_bytes)
    try:
        codec = method.codec_at(split.n_items, scenario.model, budget_bytes, rng)
    except BudgetError as err:
        events.message(f"{name}: skipped at {budget_bytes} bytes ({err.message})")
        return None
    sizes = method.sizes(codec)
    events.phase(f"{name} BPR-MF {sizes} (seed {seed})", scenario.train.epochs)
    trained = train_codec(
        split,
        codec,
        scenario.model.dim,
        scenario.model.init_std,
        scenario.train,
        scenario.eval,
        seed=seed,
        on_epoch=events.advance,
    )
    events.end_phase()
    payload = codec.encode(trained.table, codec.full_config())
    if len(payload) > budget_bytes:
        raise RuntimeError(f"{name} payload of {len(payload)} bytes over {budget_bytes}")
    test = evaluate_received(codec.decode(payload), trained.user, split, scenario, is_head)
    return {"used": len(payload), "seconds": trained.seconds, "test": test, **sizes}


def _row(
    name: str,
    budget: str,
    budget_bytes: int,
    keys: tuple[str, ...],
    used: int,
    seconds: float,
    test: dict[str, float],
    **sizes: int,
) -> dict:
    return {
        "method": METHOD_NAMES[name],
        "searcher": "",
        "budget": budget,
        "budget_bytes": budget_bytes,
        "bytes": used,
        "train_seconds": seconds,
        **sizes,
        **{k: test[k] for k in keys},
    }
