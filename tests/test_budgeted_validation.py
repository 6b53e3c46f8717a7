"""Validation during training measures what the devices train: the full configuration in full
mode; in budgeted mode each budget's configuration, on the labelling devices of that budget."""

import numpy as np
import pytest


def _validations(**patch):
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import PhaseLog, fleet_scenario

    log = PhaseLog()
    raw = fleet_scenario(engine__transport="inprocess", federated__eval_every=1, **patch)
    scenario = scenario_from_dict(raw)
    split = prepare_split(scenario.data, 0)
    outcome = run_federated_seed(scenario, split, 0, Silent(), observers=[log])
    seen: list[tuple[np.ndarray, set[int]]] = []
    for phase in log.named("validation"):
        budgets = set(outcome.fleet.budget_bytes[phase.devices].tolist())
        seen.extend((np.asarray(c, bool), budgets) for c in phase.configs)
    return seen, outcome.results


def test_full_mode_validates_the_full_configuration_on_every_labelling_device():
    seen, _ = _validations()
    assert len(seen) == 2  # one labelling per validated round
    for config, budgets in seen:
        assert config.all() and len(budgets) == 2


@pytest.mark.parametrize("start", ["uniform", "popularity"])
def test_budgeted_mode_validates_each_budgets_configuration_on_its_devices(start):
    from fedrule.search.customize import start_config

    patch = {"federated__mode": "budgeted", "federated__start_config": start}
    seen, results = _validations(**patch)
    budgets = sorted(results.searches)
    assert len(seen) == 2 * len(budgets)  # per round, one labelling per budget
    for config, (budget,) in seen:
        expected = start_config(results.layout, budget, results.popularity, start)
        np.testing.assert_array_equal(config, expected)
    assert {b for _, (b,) in seen} == set(budgets)
    assert all(not np.isnan(r["valid_ndcg@10"]) for r in results.rounds)
