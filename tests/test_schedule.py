"""Learning-rate schedules over the rounds: hand-checked factors, and devices train each round
with the scheduled rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrule.device import host
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.model.schedule import LrSchedule
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def test_factors_hand_checked():
    assert [LrSchedule("constant", 0.1, 5).factor(r) for r in (1, 3, 5)] == [1.0, 1.0, 1.0]
    linear = LrSchedule("linear", 0.2, 5)  # 1, 0.8, 0.6, 0.4, 0.2
    assert [round(linear.factor(r), 12) for r in range(1, 6)] == [1.0, 0.8, 0.6, 0.4, 0.2]
    cosine = LrSchedule("cosine", 0.1, 3)  # 1, (1 + 0.1) / 2, 0.1
    assert [cosine.factor(r) for r in (1, 2, 3)] == pytest.approx([1.0, 0.55, 0.1])
    assert cosine.factor(0) == 1.0 and cosine.factor(9) == pytest.approx(0.1)  # clamped
    five = LrSchedule("cosine", 0.0 + 1e-9, 5)
    assert five.factor(2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert LrSchedule("cosine", 0.1, 1).factor(1) == 1.0  # one round: the full rate


def _run(monkeypatch, **patch):
    rates: dict[int, float] = {}
    real = host.train_cohort

    def spy(*args, **kwargs):
        rates.setdefault(spy.round, args[5].lr)
        return real(*args, **kwargs)

    original = host.DeviceHost.train

    def train(self, request):
        spy.round = request.round
        return original(self, request)

    monkeypatch.setattr(host, "train_cohort", spy)
    monkeypatch.setattr(host.DeviceHost, "train", train)
    raw = fleet_scenario(engine__transport="inprocess", federated__rounds=3, **patch)
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    return run_federated_seed(scenario, split, 0, Silent()).results, rates


def test_devices_train_each_round_at_the_scheduled_rate(monkeypatch):
    constant, rates = _run(monkeypatch, federated__local_lr=0.1)
    assert rates == pytest.approx({1: 0.1, 2: 0.1, 3: 0.1})
    cosine, rates = _run(
        monkeypatch,
        federated__local_lr=0.1,
        federated__lr_schedule="cosine",
        federated__lr_final=0.2,
    )
    assert rates == pytest.approx({1: 0.1, 2: 0.06, 3: 0.02})
    np.testing.assert_array_equal(  # round 1 at the full rate in both, then apart
        constant.rounds[0]["loss"], cosine.rounds[0]["loss"]
    )
    assert not np.allclose(constant.table, cosine.table)
    flat, _ = _run(
        monkeypatch,
        federated__local_lr=0.1,
        federated__lr_schedule="linear",
        federated__lr_final=1.0,
    )
    np.testing.assert_array_equal(flat.table, constant.table)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"federated__lr_schedule": "cosine", "federated__lr_final": 0}, "must lie in (0, 1]"),
        ({"federated__lr_final": 0.5}, "no effect with lr_schedule: constant"),
    ],
)
def test_a_bad_or_idle_final_rate_names_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(**patch))
    assert err.value.path == "federated.lr_final" and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_schedule_without_a_final_rate_falls_to_a_tenth():
    from fedrule.engine.federated import lr_schedule

    scenario = scenario_from_dict(fleet_scenario(federated__lr_schedule="linear"))
    assert lr_schedule(scenario).factor(scenario.federated.rounds) == pytest.approx(0.1)
