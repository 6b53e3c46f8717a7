"""The fit of a device's user vector before it evaluates a table: its epochs and learning rate
reach the devices, change what they measure, and never change what they train."""

from __future__ import annotations

import numpy as np
import pytest

from fedrule.engine.federated import local_spec, run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def test_the_fit_takes_its_own_rate_and_training_keeps_the_local_one():
    scenario = scenario_from_dict(
        fleet_scenario(federated__personalize_epochs=3, federated__personalize_lr=0.02)
    )
    personal, train = local_spec(scenario, personal=True), local_spec(scenario)
    assert (personal.lr, personal.epochs, personal.sampling) == (0.02, 3, "none")
    assert (train.lr, train.epochs) == (0.2, 1)
    default = local_spec(scenario_from_dict(fleet_scenario()), personal=True)
    assert default.lr == 0.2  # null: local_lr
    assert (
        local_spec(
            scenario_from_dict(fleet_scenario(federated__personalize_epochs=0)), personal=True
        )
        is None
    )


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"federated__personalize_lr": 0}, "must be > 0"),
        (
            {"federated__personalize_lr": 0.01, "federated__personalize_epochs": 0},
            "no effect with personalize_epochs: 0",
        ),
    ],
)
def test_a_bad_or_idle_fit_rate_names_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(**patch))
    assert err.value.path == "federated.personalize_lr" and message in str(err.value)
    assert "\n" not in str(err.value)


def _run(**patch):
    raw = fleet_scenario(engine__transport="inprocess", federated__eval_every=0, **patch)
    scenario = scenario_from_dict(raw)
    return run_federated_seed(scenario, prepare_split(scenario.data, 0), 0, Silent()).results


def test_the_fit_changes_what_devices_measure_not_what_they_train():
    base = _run()
    gentle = _run(federated__personalize_lr=0.01)
    stored = _run(federated__personalize_epochs=0)
    np.testing.assert_array_equal(base.table, gentle.table)
    np.testing.assert_array_equal(base.table, stored.table)
    metrics = [r.devices["metrics"] for r in (base, gentle, stored)]
    assert not np.allclose(metrics[0], metrics[1], equal_nan=True)
    assert not np.allclose(metrics[0], metrics[2], equal_nan=True)
    assert not np.allclose(metrics[1], metrics[2], equal_nan=True)
