"""The federated baselines of ``federated.method``: nested slicing and one model per tier, in the
same harness, protocol and byte accounting as RULE."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from fedrule import seeds
from fedrule.algorithm.aggregation import RowBlockAggregator
from fedrule.algorithm.assignment import uniform_prefixes
from fedrule.algorithm.methods import get_method
from fedrule.algorithm.packing import Packer
from fedrule.algorithm.tables import ServerTables
from fedrule.cli import main
from fedrule.device.update import DeviceDeltas, sum_cohort
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import BudgetError, ConfigError
from fedrule.events import Silent
from fedrule.model.codec import elastic_codec
from fedrule.protocol import Kind
from fedrule.scenario import scenario_from_dict
from tests.fleets import PhaseLog, fleet_scenario

METHODS = ("rule", "nested", "per-tier", "full-prefix", "hashing", "qr", "popularity")


def _run(method: str, observers=(), **patch):
    raw = fleet_scenario(engine__transport="inprocess", federated__method=method, **patch)
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, scenario.seeds[0])
    seed = scenario.seeds[0]
    return scenario, split, run_federated_seed(scenario, split, seed, Silent(), observers=observers)


def _initial_table(scenario, n_items: int) -> np.ndarray:
    rng = seeds.server_rng(scenario.seeds[0], seeds.TABLE_INIT)
    values = rng.standard_normal((n_items, scenario.model.dim)) * scenario.model.init_std
    return values.astype(np.float32)


# ---------------------------------------------------------------------- nested aggregation
def test_nested_aggregation_averages_each_block_over_the_devices_that_hold_it():
    """Two items, d = 4 in two blocks of 2. Device A (weight 1) holds the first block only,
    device B (weight 3) both. A shared column averages over both devices; a column of the
    second block takes B's update alone; a row only A touched keeps its second block."""
    a_row0, b_row0, a_row1 = [1.0, 2.0, 0.0, 0.0], [5.0, 6.0, 7.0, 8.0], [4.0, 4.0, 0.0, 0.0]
    deltas = DeviceDeltas(
        row_device=np.array([0, 0, 1]),
        row_item=np.array([0, 1, 0]),
        delta=np.array([a_row0, a_row1, b_row0], dtype=np.float32),
        kept=np.array([[1, 0], [1, 0], [1, 1]], dtype=np.float32),  # A: prefix 1, B: prefix 2
        weight=np.array([1.0, 3.0]),
    )
    expected = np.array(
        [
            [(1 * 1 + 3 * 5) / 4, (1 * 2 + 3 * 6) / 4, 7.0, 8.0],  # [4, 5, 7, 8]
            [4.0, 4.0, 0.0, 0.0],  # only A: its first block; the second keeps its value
        ]
    )
    table = np.zeros((2, 4), dtype=np.float32)
    one_message = RowBlockAggregator(2, 4, 2)
    update = sum_cohort(deltas, 2 * 4)
    one_message.add(update.rows, update.sum_wdelta, update.sum_w)
    np.testing.assert_allclose(one_message.apply(table), expected)
    two_messages = RowBlockAggregator(2, 4, 2)  # each device in its own cohort: the same
    for device in (0, 1):
        rows = deltas.row_device == device
        alone = DeviceDeltas(
            np.zeros(int(rows.sum()), np.int64),
            deltas.row_item[rows],
            deltas.delta[rows],
            deltas.kept[rows],
            deltas.weight[device : device + 1],
        )
        update = sum_cohort(alone, 2 * 4)
        two_messages.add(update.rows, update.sum_wdelta, update.sum_w)
    np.testing.assert_allclose(two_messages.apply(table), expected)
    assert update.bytes_up == 2 * 2 * 4 + 4  # B uploads its two blocks of row 0 and the id


def test_prefixes_are_uniform_and_the_largest_that_fit():
    """60 items, d = 8 in 4 blocks of 2, 3 groups: a uniform prefix of k blocks costs
    16 (header) + 2 (mask) + 60 (group map) + k * 60 * 2 * 4 = 78 + 480 k bytes."""
    codec = elastic_codec(scenario_from_dict(fleet_scenario()).model, np.arange(60.0))
    assert [codec.memory_bytes(codec.uniform_config(k)) for k in (1, 2)] == [558, 1038]
    budgets = np.array([1100, 1920, 1100, 600])
    tier = np.array([0, 1, 1, 0])

    def blocks(assignment):
        out = []
        for device in range(budgets.size):
            config = assignment.configs[assignment.config_of_device[device]]
            k = int(config[0].sum())
            np.testing.assert_array_equal(config, codec.uniform_config(k))
            out.append(k)
        return out

    nested = uniform_prefixes(codec, budgets, tier, per_tier=False)
    assert blocks(nested) == [2, 3, 2, 1] and (nested.table_of_config == 0).all()
    per_tier = uniform_prefixes(codec, budgets, tier, per_tier=True)
    assert blocks(per_tier) == [1, 2, 2, 1]  # each tier's smallest budget: 600 and 1100
    assert per_tier.table_of_device(np.arange(4)).tolist() == [0, 1, 1, 0]


def test_per_tier_cohorts_never_mix_tiers_and_fit_the_nodes():
    rng = np.random.default_rng(0)
    tier = rng.integers(0, 3, size=200)
    for workers, per_worker, max_devices in [(1, 2, 64), (2, 2, 16), (4, 5, 7)]:
        packer = Packer(rng.integers(1, 50, 200), workers, per_worker, max_devices, tier)
        for devices in (np.arange(200), np.sort(rng.choice(200, 37, replace=False))):
            cohorts = packer(devices)
            assert len(cohorts) <= packer.max_cohorts()
            assert all(np.unique(tier[c]).size == 1 and c.size <= max_devices for c in cohorts)
            np.testing.assert_array_equal(np.sort(np.concatenate(cohorts)), devices)


def test_nested_devices_train_only_their_prefix_of_one_table():
    scenario, split, outcome = _run("nested", federated__rounds=2)
    res = outcome.results
    assert res.table.shape == (split.n_items, scenario.model.dim)
    initial = _initial_table(scenario, split.n_items)
    codec = res.layout
    largest = max(int(s.config[0].sum()) for s in res.searches.values())
    smallest = min(int(s.config[0].sum()) for s in res.searches.values())
    assert smallest < largest < codec.num_blocks
    width = codec.block_dim
    np.testing.assert_array_equal(res.table[:, largest * width :], initial[:, largest * width :])
    assert not np.allclose(res.table[:, : smallest * width], initial[:, : smallest * width])
    assert not np.allclose(
        res.table[:, smallest * width : largest * width],
        initial[:, smallest * width : largest * width],
    )


def test_per_tier_trains_each_tier_table_only_on_its_own_devices():
    """The small tier's table is bit for bit the same whether or not the large tier's devices
    train; the large tier's table stays at its initial value when they never answer."""
    tiers = fleet_scenario()["fleet"]["tiers"]
    silent = [tiers[0], {**tiers[1], "availability": 0.0}]
    scenario, split, both = _run("per-tier")
    _, _, alone = _run("per-tier", fleet__tiers=silent)
    n = split.n_items
    small, large = slice(0, n), slice(n, 2 * n)
    assert both.results.table.shape == (2 * n, scenario.model.dim)
    np.testing.assert_array_equal(alone.results.table[small], both.results.table[small])
    np.testing.assert_array_equal(alone.results.table[large], _initial_table(scenario, n))
    assert not np.allclose(both.results.table[large], _initial_table(scenario, n))
    assert not np.allclose(both.results.table[small], _initial_table(scenario, n))
    for record in alone.results.rounds:
        assert record["unavailable"] > 0 and record["trained"] > 0


@pytest.mark.parametrize("method", ["hashing", "qr"])
def test_compressed_tables_fit_each_tier_and_train_only_on_its_devices(method):
    """One table per tier, the largest of the format that fits the tier's smallest budget;
    the small tier's table is bit for bit the same whether or not the large tier trains, and
    the large tier's stays at its initial value when its devices never answer."""
    tiers = fleet_scenario()["fleet"]["tiers"]
    silent = [tiers[0], {**tiers[1], "availability": 0.0}]
    scenario, split, both = _run(method)
    _, _, alone = _run(method, fleet__tiers=silent)
    res = both.results
    offsets = res.table_offsets
    assert offsets.size == 3 and res.table.shape == (offsets[-1], scenario.model.dim)
    received = sorted(res.searches.items())
    for tier, (budget, found) in enumerate(received):  # tier 0 has the smaller budget
        assert found.bytes <= budget
        rows = (found.bytes - (20 if method == "hashing" else 12)) // (4 * scenario.model.dim)
        assert offsets[tier + 1] - offsets[tier] == rows
    assert offsets[1] < offsets[2] - offsets[1] < split.n_items  # more rows at more bytes
    small, large = slice(0, offsets[1]), slice(offsets[1], offsets[2])
    np.testing.assert_array_equal(alone.results.table[small], res.table[small])
    start = get_method(method).initial_table(ServerTables((), offsets, 1), scenario.model, 0, None)
    np.testing.assert_array_equal(alone.results.table[large], start[large])
    assert not np.allclose(res.table[large], start[large])
    assert not np.allclose(res.table[small], start[small])
    for record in alone.results.rounds:
        assert record["unavailable"] > 0 and record["trained"] > 0


def test_full_prefix_trains_the_whole_table_and_dispatches_uniform_prefixes():
    scenario, split, outcome = _run("full-prefix", federated__rounds=2)
    res = outcome.results
    changed = ~np.isclose(res.table, _initial_table(scenario, split.n_items))
    assert changed.any(axis=0).all()  # every column trained, whatever the device's budget
    _, _, nested = _run("nested", federated__rounds=2)
    for budget, found in res.searches.items():  # the same prefixes nested devices receive
        np.testing.assert_array_equal(found.config, nested.results.searches[budget].config)
        assert found.bytes <= budget


def test_popularity_devices_receive_the_counted_ranking_and_nothing_trains():
    _, split, outcome = _run("popularity")
    res = outcome.results
    assert res.rounds == [] and "train" not in res.phase_seconds
    train = split.train
    items = [train.items[train.indptr[u] : train.indptr[u + 1]] for u in outcome.fleet.user]
    counts = np.bincount(np.concatenate(items), minlength=split.n_items)  # the devices' own
    np.testing.assert_array_equal(res.table[:, 0], counts)
    assert set(res.devices["bytes_received"].tolist()) == {8 + split.n_items}  # 1-byte ids
    ndcg = res.devices["metrics"][:, res.metric_keys.index("ndcg@10")]
    assert np.nanmean(ndcg) > 0


# ---------------------------------------------------------------------- whole runs
@pytest.mark.parametrize("method", METHODS)
def test_label_requests_only_for_rule(method):
    log = PhaseLog()
    _run(method, observers=[log])
    kinds: list[Kind] = [r.kind for phase in log.phases for r in phase.requests]
    assert Kind.TEST in kinds and Kind.COUNT in kinds
    assert (Kind.TRAIN in kinds) == (method != "popularity")  # no model, no rounds
    assert (Kind.LABEL in kinds) == (method == "rule")


def test_baselines_validate_what_devices_receive():
    scenario, _, outcome = _run("per-tier", federated__eval_every=1)
    values = [r[f"valid_{scenario.eval.metric}"] for r in outcome.results.rounds]
    assert all(0 < v <= 1 for v in values)


def test_a_per_tier_run_resumes_from_its_checkpoint_to_the_same_numbers(tmp_path):
    """The stacked per-tier tables, the server optimiser's state and the device state travel
    through the checkpoint: stopped after round 2 and resumed, the run ends bit for bit as an
    uninterrupted one."""

    class Stop(Exception):
        pass

    def stop_in_round_3(state):  # before the checkpoint of round 3 is written
        if state.round == 3:
            raise Stop

    patch = {
        "federated__rounds": 4,
        "federated__eval_every": 2,
        "federated__server_optimizer": "fedadam",
        "federated__server_lr": 0.05,
    }
    scenario, split, whole = _run("per-tier", **patch)
    with pytest.raises(Stop):
        run_federated_seed(
            scenario, split, 0, Silent(), hooks=[stop_in_round_3], checkpoint_dir=tmp_path
        )
    resumed = run_federated_seed(scenario, split, 0, Silent(), checkpoint_dir=tmp_path)
    assert resumed.resumed_after_round == 2
    np.testing.assert_array_equal(resumed.results.table, whole.results.table)
    np.testing.assert_array_equal(
        resumed.results.devices["metrics"], whole.results.devices["metrics"]
    )


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_each_method_runs_end_to_end_and_the_report_tells_them_apart(tmp_path, capsys):
    from fedrule.report.group_tables import memory_rows, summary_rows
    from fedrule.report.runs import load_groups

    folders = {}
    for method in METHODS:
        raw = fleet_scenario(engine__transport="inprocess", federated__method=method)
        path = tmp_path / f"{method}.yaml"
        path.write_text(yaml.safe_dump(raw))
        out = tmp_path / method
        assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
        assert "test metrics per device tier" in capsys.readouterr().out
        (folders[method],) = out.iterdir()
    for method, folder in folders.items():
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["method"] == method
        assert (folder / "tiers.csv").is_file() and (folder / "rounds-seed0.csv").is_file()
        devices = _rows(folder / "devices-seed0.csv")
        assert len(devices) == 48
        assert all(r["accepted"] == "True" for r in devices)
        assert all(int(r["bytes_received"]) <= int(r["budget_bytes"]) for r in devices)
        assert ("predicted" in devices[0]) == (method == "rule")
        estimator = metrics["seeds"]["0"]["estimator"]
        assert bool(estimator) == (method == "rule")
        table_bytes = 60 * 8 * 4
        rounds = metrics["seeds"]["0"]["rounds"]
        assert (len(rounds) == 0) == (method == "popularity")
        for record in rounds:
            if method not in ("rule", "full-prefix"):  # their prefix or tier's table only
                assert 0 < record["bytes_down"] < record["trained"] * table_bytes
    for method in METHODS[1:]:  # no supernet or estimator to search
        assert main(["search", str(folders[method]), "-b", "0.5"]) == 2
        assert f"federated.method: {method} run" in capsys.readouterr().err
    groups = load_groups(list(folders.values()))
    assert sorted(g.label for g in groups) == sorted(f"method={m}" for m in METHODS)
    series = {row["series"].split(": ")[-1] for row in memory_rows(groups)}
    assert series == {"rule-federated-full", *(f"{m}-federated" for m in METHODS[1:])}
    assert {row["group"] for row in summary_rows(groups)} == {g.label for g in groups}


# ---------------------------------------------------------------------- the scenario key
@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"federated__method": "heterofl"}, "federated.method"),
        ({"federated__method": "nested", "engine__kind": "centralized"}, "engine.kind"),
        ({"federated__method": "per-tier", "privacy__dense": True}, "decoy and dense"),
        (
            {"federated__method": "per-tier", "privacy__clip": 1.0, "privacy__noise_multiplier": 1},
            "central DP",
        ),
        (
            {"federated__method": "hashing", "privacy__clip": 1.0, "privacy__noise_multiplier": 1},
            "central DP",
        ),
    ],
)
def test_a_method_that_cannot_run_is_one_line_naming_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(**patch))
    assert err.value.path == "federated.method"
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("method", "least"), [("hashing", 20 + 32), ("qr", 12 + 16 * 32)])
def test_a_budget_below_the_smallest_compressed_table_names_the_tier(method, least):
    """d = 8 floats: a hashed row is 32 bytes after a 20-byte header; QR needs at least
    ceil(60 / m) + m = 16 rows (m = 8) after a 12-byte header."""
    tiers = fleet_scenario()["fleet"]["tiers"]
    small = [tiers[0], {**tiers[1], "budget": least - 1}]
    with pytest.raises(BudgetError) as err:
        _run(method, fleet__tiers=small)
    assert err.value.path == "fleet.tiers[1].budget" and f"{least} bytes at least" in str(err.value)
    _run(method, fleet__tiers=[tiers[0], {**tiers[1], "budget": least}], federated__rounds=1)


def test_budgeted_mode_with_a_baseline_names_the_key():
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(federated__method="hashing", federated__mode="budgeted"))
    assert err.value.path == "federated.mode" and "\n" not in str(err.value)


def test_an_audit_of_compressed_payloads_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(federated__method="qr", privacy__audit=True))
    assert err.value.path == "privacy.audit"


def test_a_bad_method_exits_2_and_a_sweep_over_methods_validates(tmp_path, capsys):
    from fedrule.sweeps import SweepPlan, parse_grid

    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet_scenario()))
    assert main(["validate", str(path), "--set", "federated.method=nest"]) == 2
    assert "federated.method" in capsys.readouterr().err
    plan = SweepPlan(path, (), parse_grid(["federated.method=rule,nested,per-tier"], path), (0,))
    plan.validate()
    assert [r.name for r in plan.runs()] == [
        "method-rule-s0",
        "method-nested-s0",
        "method-per-tier-s0",
    ]


# ---------------------------------------------------------------------- Flower
@pytest.mark.slow
@pytest.mark.parametrize("method", ["nested", "per-tier", "qr"])
def test_baselines_give_the_same_numbers_over_flower(method):
    scenario = scenario_from_dict(fleet_scenario(federated__method=method))
    split = prepare_split(scenario.data, 0)
    flower = run_federated_seed(scenario, split, 0, Silent()).results
    _, _, inprocess = _run(method)
    np.testing.assert_array_equal(flower.table, inprocess.results.table)
    np.testing.assert_array_equal(flower.devices["metrics"], inprocess.results.devices["metrics"])
    assert flower.rounds[-1]["bytes_down"] == inprocess.results.rounds[-1]["bytes_down"]


@pytest.mark.parametrize("method", ["hashing", "qr", "popularity"])
def test_popularity_negatives_where_devices_cannot_estimate_popularity_name_the_key(method):
    raw = fleet_scenario(federated__method=method)
    raw["train"]["negative_exponent"] = 0.5
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(raw)
    assert err.value.path == "train.negative_exponent" and "\n" not in str(err.value)
    raw["train"]["negative_exponent"] = 0.0
    scenario_from_dict(raw)
