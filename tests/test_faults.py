"""Injected faults, one test each, on a tiny fleet: device crashes, stragglers with a deadline,
message loss and dying workers, per phase; each is counted, and a faulty run is reproducible."""

import json

import numpy as np
import pytest

from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def _run(faults: dict, transport: str = "inprocess", **patch):
    raw = fleet_scenario(engine__transport=transport, **{"federated__rounds": 3, **patch})
    raw["faults"] = faults
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    return run_federated_seed(scenario, split, 0, Silent()).results


def _accounted(rounds):
    for r in rounds:
        assert r["trained"] + r["unavailable"] + r["failed"] + r["late"] == r["sampled"]


def test_device_crashes_in_training_are_failed_devices_and_reproducible():
    results = _run({"crash": 0.3, "phases": ["train"]})
    _accounted(results.rounds)
    assert sum(r["failed"] for r in results.rounds) > 0
    assert all(r["trained"] > 0 for r in results.rounds)
    again = _run({"crash": 0.3, "phases": ["train"]})
    np.testing.assert_array_equal(results.table, again.table)
    clean = _run({})
    assert sum(r["failed"] for r in clean.rounds) == 0


def test_stragglers_miss_the_deadline_only_when_there_is_one():
    late = _run({"straggler": 0.5, "straggler_delay": 60, "deadline": 30, "phases": ["train"]})
    _accounted(late.rounds)
    assert sum(r["late"] for r in late.rounds) > 0
    waited = _run({"straggler": 0.5, "straggler_delay": 60, "deadline": 0, "phases": ["train"]})
    assert sum(r["late"] for r in waited.rounds) == 0


def test_lost_messages_are_counted_and_their_devices_fail():
    results = _run({"message_loss": 0.4, "phases": ["train"]}, engine__devices_per_node=3)
    _accounted(results.rounds)
    lost = sum(r["lost_messages"] for r in results.rounds)
    assert lost > 0
    assert sum(r["failed"] for r in results.rounds) >= lost


def test_a_dying_worker_fails_its_message_in_process():
    results = _run({"worker_crash": 0.4, "phases": ["train"]}, engine__devices_per_node=3)
    _accounted(results.rounds)
    assert sum(r["failed"] for r in results.rounds) > 0
    assert all(r["trained"] > 0 for r in results.rounds)


def test_labelling_and_dispatch_faults():
    results = _run({"crash": 0.3, "phases": ["label", "test"]})
    assert results.label_report["dropped_devices"] > 0
    answered = results.devices["answered"]
    assert 0 < answered.sum() < answered.size  # crashed devices send no test report
    assert np.isnan(results.devices["metrics"][~answered]).all()
    assert sum(r["failed"] for r in results.rounds) == 0  # training was not faulted


def test_fault_counts_reach_the_rounds_table(tmp_path):
    from fedrule.report.run import run_scenario

    raw = fleet_scenario(engine__transport="inprocess")
    raw["faults"] = {"crash": 0.2, "message_loss": 0.2, "phases": ["train"]}
    folder = run_scenario(scenario_from_dict(raw), tmp_path)
    header = (folder / "rounds-seed0.csv").read_text().splitlines()[0].split(",")
    assert {"failed", "late", "lost_messages"} <= set(header)
    report = json.loads((folder / "metrics.json").read_text())["seeds"]["0"]["estimator"]
    assert report["dropped_devices"] == 0


@pytest.mark.slow
def test_a_killed_ray_worker_is_restarted_and_the_run_goes_on():
    """The worker process exits for real; Ray restarts it, its message fails, later messages
    (retried while it restarts) succeed."""
    results = _run({"worker_crash": 0.3, "phases": ["train"]}, "flower", federated__rounds=1)
    _accounted(results.rounds)
    assert sum(r["failed"] for r in results.rounds) > 0
    assert results.rounds[-1]["trained"] > 0
    assert results.devices["answered"].all()
