"""The federated algorithm without Flower: protocol, packing, pipeline, hooks, codec, and
invariance of results to workers and packing (in-process transport: fast, no Ray)."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrule.algorithm.hooks import RoundState
from fedrule.algorithm.packing import Packer, num_cohorts, pack
from fedrule.device.update import ClipUpdate, DeviceDeltas, UpdatePipeline, sum_cohort
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.model.codec import ItemCodec, ReceivedTable
from fedrule.model.elastic import ElasticLayout
from fedrule.protocol import REPLIES, REQUESTS, Kind, Wire
from fedrule.scenario import scenario_from_dict
from tests.fleets import PhaseLog, fleet_scenario


def _run(hooks=(), observers=(), **patch):
    scenario = scenario_from_dict(fleet_scenario(engine__transport="inprocess", **patch))
    split = prepare_split(scenario.data, scenario.seeds[0])
    seed = scenario.seeds[0]
    return run_federated_seed(scenario, split, seed, Silent(), hooks=hooks, observers=observers)


# ---------------------------------------------------------------------- protocol
def _example(cls, rng):
    values = {}
    for field in dataclasses.fields(cls):
        if field.name == "payloads":
            values[field.name] = (b"\x00\x01\x02", bytes(rng.integers(0, 256, 7, dtype=np.uint8)))
        elif field.name == "keys":
            values[field.name] = ("ndcg@10", "recall@10")
        elif field.type in ("int",):
            values[field.name] = int(rng.integers(0, 100))
        elif field.type in ("float",):
            values[field.name] = float(rng.random())
        else:
            values[field.name] = rng.standard_normal((3, 2))
    return cls(**values)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_message_survives_its_wire_form(kind):
    rng = np.random.default_rng(0)
    for cls in (REQUESTS[kind], REPLIES[kind]):
        message = _example(cls, rng)
        wire = message.to_wire()
        assert all(isinstance(v, np.ndarray) for v in wire.arrays.values())
        back = cls.from_wire(Wire(dict(wire.arrays), dict(wire.scalars)))
        for field in dataclasses.fields(cls):
            a, b = getattr(message, field.name), getattr(back, field.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b, field.name


def test_a_message_missing_a_field_is_an_error():
    wire = REQUESTS[Kind.COUNT](devices=np.arange(3)).to_wire()
    with pytest.raises(ValueError, match="devices"):
        REQUESTS[Kind.COUNT].from_wire(Wire({}, wire.scalars))


# ---------------------------------------------------------------------- packing
def test_packing_covers_every_device_once_and_balances_cost():
    rng = np.random.default_rng(1)
    cost = rng.integers(1, 200, size=500).astype(float)
    devices = np.sort(rng.choice(500, 300, replace=False))
    cohorts = pack(devices, cost, 7)
    assert len(cohorts) in (7, 8)  # runs of at least the mean load, and what is left
    np.testing.assert_array_equal(np.sort(np.concatenate(cohorts)), devices)
    target = (cost[devices].sum() + devices.size) / 7
    loads = [cost[c].sum() + c.size for c in cohorts]
    assert all(target <= load <= target + cost.max() + 1 for load in loads[:-1])
    assert loads[-1] <= target + cost.max() + 1  # what is left
    assert all((np.diff(c) > 0).all() for c in cohorts)
    assert [c.tolist() for c in pack(devices, cost, 7)] == [c.tolist() for c in cohorts]
    for busy, light in itertools.pairwise(cohorts):  # devices of similar cost together
        assert cost[light].max() <= cost[busy].min()


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 400),
    share=st.floats(0.01, 1.0),
    workers=st.integers(1, 4),
    per_worker=st.integers(1, 5),
    max_devices=st.integers(1, 70),
    keys=st.integers(0, 4),
    similar_sizes=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_packer_never_needs_more_nodes_than_it_announces(
    n, share, workers, per_worker, max_devices, keys, similar_sizes, seed
):
    rng = np.random.default_rng(seed)
    cost = rng.integers(0, 3000, size=n).astype(float)
    partition = rng.integers(0, keys, size=n) if keys else None
    packer = Packer(cost, workers, per_worker, max_devices, partition, spread=similar_sizes)
    devices = np.sort(rng.choice(n, max(1, int(share * n)), replace=False))
    cohorts = packer(devices)
    assert len(cohorts) <= packer.max_cohorts()
    assert all(0 < c.size <= max_devices for c in cohorts)
    np.testing.assert_array_equal(np.sort(np.concatenate(cohorts)), devices)
    if partition is not None:
        assert all(np.unique(partition[c]).size == 1 for c in cohorts)


def test_number_of_cohorts():
    assert num_cohorts(0, 2, 2, 64) == 0
    assert num_cohorts(3, 2, 2, 64) == 3  # never more cohorts than devices
    assert num_cohorts(100, 2, 2, 64) == 4  # k x workers
    assert num_cohorts(1000, 2, 2, 64) == 16  # at most 64 devices per cohort
    packer = Packer(np.ones(1000), 2, 2, 64)
    assert packer.max_cohorts() == 16 + 16 + 1  # runs cut at 64 devices, and the last
    assert len(packer(np.arange(1000))) == 16
    assert max(c.size for c in packer(np.arange(1000))) <= 64


# ---------------------------------------------------------------------- update pipeline
def _deltas():
    # device 0 touched items 3 and 5, device 1 touched item 5
    return DeviceDeltas(
        row_device=np.array([0, 0, 1]),
        row_item=np.array([3, 5, 5]),
        delta=np.array([[3.0, 0.0], [0.0, 4.0], [0.3, 0.4]], dtype=np.float32),
        kept=np.ones((3, 1), np.float32),
        weight=np.array([2.0, 1.0]),
    )


def test_clipping_bounds_each_device_before_the_cohort_sum():
    deltas = _deltas()
    np.testing.assert_allclose(deltas.norms(), [5.0, 0.5])
    clipped = UpdatePipeline((ClipUpdate(1.0),)).apply(deltas, [])
    np.testing.assert_allclose(clipped.norms(), [1.0, 0.5], rtol=1e-6)  # only device 0 shrinks
    total = sum_cohort(clipped, bytes_per_block=8)
    np.testing.assert_array_equal(total.rows, [3, 5])
    # item 5: 2 * (0, 0.8) + 1 * (0.3, 0.4); weights 2 + 1
    np.testing.assert_allclose(total.sum_wdelta, [[1.2, 0.0], [0.3, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(total.sum_w, [[2.0], [3.0]])
    assert total.bytes_up == 3 * 8 + 3 * 4


def test_clipping_does_not_depend_on_the_cohort():
    deltas = _deltas()
    alone = [
        DeviceDeltas(
            np.zeros(int((deltas.row_device == k).sum()), np.int64),
            deltas.row_item[deltas.row_device == k],
            deltas.delta[deltas.row_device == k],
            deltas.kept[deltas.row_device == k],
            deltas.weight[k : k + 1],
        )
        for k in range(2)
    ]
    clip = ClipUpdate(1.0)
    together = clip(deltas, [])
    for k in range(2):
        mine = together.delta[deltas.row_device == k]
        np.testing.assert_array_equal(clip(alone[k], []).delta, mine)


# ---------------------------------------------------------------------- codec
def test_the_elastic_table_is_an_item_codec():
    rng = np.random.default_rng(2)
    layout = ElasticLayout(8, 4, np.array([0, 0, 1, 1, 2, 2, 2]), min_blocks=1)
    assert isinstance(layout, ItemCodec)
    table = rng.standard_normal((7, 8)).astype(np.float32)
    config = layout.random_config(rng)
    payload = layout.encode(table, config)
    assert len(payload) == layout.memory_bytes(config)
    received = layout.decode(payload)
    assert isinstance(received, ReceivedTable)
    assert received.layout.min_blocks == 1  # the header carries what devices train with
    users = torch.from_numpy(rng.standard_normal((3, 8)).astype(np.float32))
    masked = torch.from_numpy(table) * layout.item_weights(config).repeat_interleave(2, dim=1)
    torch.testing.assert_close(received.score(users), users @ masked.T)


# ---------------------------------------------------------------------- whole runs
def test_results_do_not_depend_on_workers_or_packing():
    base = _run(engine__num_cpus=1, engine__devices_per_node=64)
    variants = [
        {"engine__num_cpus": 2},
        {"engine__num_cpus": 3, "engine__devices_per_node": 5},
        {"engine__num_cpus": 2, "engine__messages_per_worker": 5},
    ]
    for patch in variants:
        other = _run(**patch)
        np.testing.assert_allclose(other.results.table, base.results.table, rtol=1e-5, atol=1e-7)
        a, b = base.results.devices["metrics"], other.results.devices["metrics"]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for ra, rb in zip(base.results.rounds, other.results.rounds, strict=True):
            assert (ra["trained"], ra["bytes_up"], ra["bytes_down"]) == (
                rb["trained"],
                rb["bytes_up"],
                rb["bytes_down"],
            )


def test_round_hook_sees_every_round_with_a_state_that_saves_and_loads(tmp_path):
    states = []
    outcome = _run(hooks=[states.append], federated__rounds=3)
    assert [s.round for s in states] == [1, 2, 3]
    last = states[-1]
    np.testing.assert_array_equal(last.table, outcome.results.table)
    path = tmp_path / "state.pt"
    torch.save(last.to_saveable(), path)
    back = RoundState.from_saveable(torch.load(path, weights_only=True))
    assert (back.round, back.seed, back.label_stamp) == (3, last.seed, last.label_stamp)
    np.testing.assert_array_equal(back.table, last.table)
    assert json.dumps(back.history) == json.dumps([s.record for s in states])  # NaN-aware


def test_a_failing_device_host_is_a_failed_node_not_a_crash(monkeypatch):
    from fedrule.device import host

    real = host.DeviceHost.train
    calls = []

    def flaky(self, request):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("worker crashed")
        return real(self, request)

    monkeypatch.setattr(host.DeviceHost, "train", flaky)
    outcome = _run()
    first = outcome.results.rounds[0]
    assert first["failed"] > 0 and first["trained"] > 0
    assert first["trained"] + first["failed"] + first["unavailable"] == first["sampled"]


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "fedyogi"])
def test_server_optimizer_is_used_by_a_run(name):
    base = _run(federated__rounds=2)
    other = _run(federated__rounds=2, federated__server_optimizer=name, federated__server_lr=0.05)
    assert not np.allclose(base.results.table, other.results.table)
    assert np.isfinite(other.results.table).all()
    assert other.results.rounds[-1]["trained"] > 0


def test_early_stopping_keeps_the_best_validated_round(monkeypatch):
    from fedrule.algorithm.callbacks import Validation

    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.5])
    monkeypatch.setattr(Validation, "measure", lambda self, ctx, state: (next(scripted), state))
    states = []
    outcome = _run(
        hooks=[states.append],
        federated__rounds=6,
        federated__eval_every=1,
        federated__patience=2,
    )
    assert [s.round for s in states] == [1, 2, 3, 4]  # no gain in rounds 3 and 4: stop
    assert outcome.results.best_round == 2
    np.testing.assert_array_equal(outcome.results.table, states[1].table)


def test_a_federated_run_folder_has_its_convergence_plot(tmp_path):
    from fedrule.report.run import run_scenario

    raw = fleet_scenario(engine__transport="inprocess", federated__eval_every=1)
    folder = run_scenario(scenario_from_dict(raw), tmp_path)
    assert (folder / "convergence.png").stat().st_size > 10_000
    assert "phase times: count" in (folder / "log.txt").read_text()


@pytest.mark.parametrize("verify_on", ["held-out", "labelling"])
def test_verification_runs_on_the_devices_that_did_not_label(verify_on):
    """End to end (in-process): the estimator's labels come from 24 of 48 devices; held-out
    verification asks the other 24, ``verify_on: labelling`` the same 24."""
    log = PhaseLog()
    _run(observers=[log], search__verify_on=verify_on)
    asked = {p.name: np.sort(p.devices) for p in log.phases}
    labelling, verification = asked["labelling"], asked["verification"]
    assert labelling.size == verification.size == 24
    if verify_on == "held-out":
        assert np.intersect1d(labelling, verification).size == 0
    else:
        assert np.array_equal(labelling, verification)
