"""Block coverage: the training weight each (item group, block) received."""

import numpy as np
import pytest

from fedrule.algorithm.coverage import BlockCoverage
from fedrule.model.elastic import ElasticLayout


def test_weights_add_up_per_group_and_block_over_stacked_tables():
    layout = ElasticLayout(4, 2, np.array([0, 1, 1]), min_blocks=1)  # items 1, 2 in group 1
    coverage = BlockCoverage(layout)
    sum_w = np.array([[3, 0], [1, 1], [2, 0], [5, 5], [0, 0], [0, 4]], dtype=float)
    coverage.add(sum_w, np.array([0, 3, 6]))  # two tables of three items
    assert np.array_equal(coverage.weight, [[8, 5], [3, 5]])
    rows = {(r["group"], r["block"]): r["share"] for r in coverage.rows()}
    assert rows == {(0, 0): 1.0, (0, 1): 5 / 8, (1, 0): 3 / 5, (1, 1): 1.0}
    assert "60%" in coverage.summary()  # the least-trained block: 3 of 5


def test_nothing_trained_says_so():
    coverage = BlockCoverage(ElasticLayout(4, 2, np.array([0, 1]), min_blocks=1))
    assert coverage.summary() == "block coverage: no block was trained"
    assert all(r["share"] == 0 for r in coverage.rows())


@pytest.mark.parametrize("mode", ["full", "budgeted"])
def test_full_mode_trains_every_block_of_a_group_alike_and_budgeted_mode_does_not(mode):
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    raw = fleet_scenario(engine__transport="inprocess", federated__mode=mode)
    scenario = scenario_from_dict(raw)
    results = run_federated_seed(scenario, prepare_split(scenario.data, 0), 0, Silent()).results
    share = np.array([r["share"] for r in results.coverage.rows()])
    if mode == "full":
        assert np.all(share == 1)
    else:  # the small tier holds only some blocks: the others are trained by the large tier
        assert share.min() < 1


def test_no_coverage_under_central_dp():
    """The per-block weights are not noised: their sums are not published under central DP."""
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    raw = fleet_scenario(engine__transport="inprocess")
    raw["privacy"] = {"clip": 1.0, "noise_multiplier": 0.5}
    scenario = scenario_from_dict(raw)
    results = run_federated_seed(scenario, prepare_split(scenario.data, 0), 0, Silent()).results
    assert results.coverage is None
