"""Local DP: each device noises its own clipped, dense upload; its own epsilon is accounted."""

import dp_accounting
import numpy as np
import pytest

from fedrule.device.update import DeviceDeltas, LocalNoise, privacy_pipeline
from fedrule.errors import ConfigError
from fedrule.privacy.accounting import local_epsilon
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def test_local_noise_has_the_asked_scale_on_held_blocks_only():
    rows = 4000
    deltas = DeviceDeltas(
        row_device=np.repeat([0, 1], rows // 2),
        row_item=np.tile(np.arange(rows // 2), 2),
        delta=np.zeros((rows, 4), np.float32),
        kept=np.tile([[1.0, 0.0]], (rows, 1)).astype(np.float32),  # block 0 held, block 1 not
        weight=np.ones(2),
    )
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    noised = LocalNoise(0.5)(deltas, rngs).delta
    assert noised[:, :2].std() == pytest.approx(0.5, rel=0.03)
    assert (noised[:, 2:] == 0).all()
    again = LocalNoise(0.5)(deltas, [np.random.default_rng(0), np.random.default_rng(1)]).delta
    np.testing.assert_array_equal(noised, again)  # from the devices' own streams


def test_local_epsilon_matches_the_library():
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.GaussianDpEvent(2.0 / 2)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, 10))
    assert local_epsilon(2.0, 10, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5))
    assert local_epsilon(2.0, 20, 1e-5) > local_epsilon(2.0, 10, 1e-5)
    assert local_epsilon(0.0, 3, 1e-5) == float("inf")


def test_local_dp_needs_clip_and_dense():
    raw = fleet_scenario()
    raw["privacy"] = {"local_noise_multiplier": 1.0, "clip": 1.0}
    with pytest.raises(ConfigError, match="privacy.local_noise_multiplier"):
        scenario_from_dict(raw)
    raw["privacy"]["dense"] = True
    scenario = scenario_from_dict(raw)
    steps = privacy_pipeline(scenario.privacy, 60).steps
    assert type(steps[-1]).__name__ == "LocalNoise" and steps[-1].std == 1.0


def test_a_local_dp_run_reports_each_devices_epsilon():
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent

    raw = fleet_scenario(engine__transport="inprocess")
    raw["privacy"] = {"local_noise_multiplier": 1.0, "clip": 1.0, "dense": True}
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    rounds = run_federated_seed(scenario, split, 0, Silent()).results.rounds
    eps = [r["local_epsilon"] for r in rounds]
    assert 0 < eps[0] < eps[1]
