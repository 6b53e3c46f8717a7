"""search.verify: candidates are each budget's searched and largest uniform configuration and
its popularity fit; each budget takes the best measured candidate that fits, so measured quality
never falls with the budget."""

import numpy as np

from fedrule.model.elastic import ElasticLayout
from fedrule.search import verify
from fedrule.search.base import SearchResult


def _layout() -> ElasticLayout:
    return ElasticLayout(dim=4, num_blocks=2, group_of_item=np.array([0, 0, 1, 1]), min_blocks=1)


def _found(layout, configs):
    arrays = [np.array(c, bool) for c in configs]
    return {
        int(layout.memory_bytes(c)): SearchResult(c, 0, 0.0, 0, 0.0, "evolution") for c in arrays
    }


def test_candidates_are_searched_and_uniform_without_repeats():
    layout = _layout()
    small, large = [[1, 0], [1, 1]], [[1, 1], [1, 1]]
    found = _found(layout, [small, large])
    got = verify.candidates(layout, found)
    uniform_small = layout.uniform_config(1)
    expected = [np.array(small, bool), uniform_small, np.array(large, bool)]
    assert len(got) == 3  # the large budget's uniform configuration is the searched one
    for config, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(config, want)


def test_the_popularity_fit_is_a_candidate_and_wins_where_it_measures_best():
    layout = _layout()
    tail_heavy, large = [[1, 0], [1, 1]], [[1, 1], [1, 1]]  # group 0 holds the popular items
    found = _found(layout, [tail_heavy, large])
    got = verify.candidates(layout, found, popularity=np.array([9, 9, 1, 1]))
    # at the small budget (3 blocks of 2 items): searched, uniform (1 block each), and the
    # popularity fit, 2 blocks for the popular group and the minimum of 1 for the other
    head_heavy = np.array([[1, 1], [1, 0]], bool)
    assert len(got) == 4
    np.testing.assert_array_equal(got[2], head_heavy)
    np.testing.assert_array_equal(got[3], np.array(large, bool))
    assert layout.memory_bytes(head_heavy) == layout.memory_bytes(np.array(tail_heavy, bool))
    chosen = verify.choose(
        layout, found, got, np.array([0.1, 0.05, 0.2, 0.15]), lambda c: np.zeros(len(c))
    )
    small, big = sorted(chosen)
    np.testing.assert_array_equal(chosen[small].config, head_heavy)
    np.testing.assert_array_equal(chosen[big].config, head_heavy)  # measured above the full one
    # the trained configuration (budgeted mode) is not measured twice when it is the same one
    again = verify.candidates(layout, found, {small: head_heavy}, popularity=np.array([9, 9, 1, 1]))
    assert len(again) == 4


def test_each_budget_takes_the_best_measured_candidate_that_fits():
    layout = _layout()
    small, large = [[1, 0], [1, 1]], [[1, 1], [1, 1]]
    found = _found(layout, [small, large])
    configs = verify.candidates(layout, found)  # small searched, small uniform, large

    def predict(c):
        return np.arange(len(c), dtype=float)

    # the large searched configuration measures worse than the small searched one
    chosen = verify.choose(layout, found, configs, np.array([0.3, 0.2, 0.1]), predict)
    budgets = sorted(chosen)
    np.testing.assert_array_equal(chosen[budgets[0]].config, configs[0])
    np.testing.assert_array_equal(chosen[budgets[1]].config, configs[0])  # smaller, measured best
    assert chosen[budgets[1]].measured == 0.3 and chosen[budgets[1]].predicted == 0.0
    assert chosen[budgets[1]].bytes == layout.memory_bytes(configs[0])
    # a tie goes to the larger configuration; an unmeasured one never wins
    chosen = verify.choose(layout, found, configs, np.array([0.3, np.nan, 0.3]), predict)
    np.testing.assert_array_equal(chosen[budgets[1]].config, configs[2])
    measured = [chosen[b].measured for b in budgets]
    assert measured == sorted(measured)


def test_verifying_devices_are_the_ones_that_did_not_label_when_enough():
    from fedrule.algorithm.labelling import label_devices, verify_devices

    labelling = label_devices(7, 100, 30)
    verifying = verify_devices(7, 100, 30)
    assert labelling.size == 30 and verifying.size == 70
    assert np.intersect1d(labelling, verifying).size == 0  # measured on unseen items
    assert np.array_equal(np.union1d(labelling, verifying), np.arange(100))
    assert np.array_equal(verify_devices(7, 100, 30), verifying)  # seeded
    # too few left over (40 < 60), or every device labels: the labelling devices verify
    assert np.array_equal(verify_devices(7, 100, 60), label_devices(7, 100, 60))
    assert np.array_equal(verify_devices(7, 100, 0), np.arange(100))
    assert np.array_equal(verify_devices(7, 100, 30, held_out=False), labelling)
    # search.verify_users: a seeded sample of the held-out devices, at most that many
    few = verify_devices(7, 100, 30, most=20)
    assert few.size == 20 and np.all(np.diff(few) > 0) and np.isin(few, verifying).all()
    assert np.array_equal(verify_devices(7, 100, 30, most=20), few)
    assert np.array_equal(verify_devices(7, 100, 30, most=70), verifying)


def test_verify_on_errors_name_the_key():
    import pytest

    from fedrule.errors import ConfigError
    from fedrule.scenario.load import load_scenario

    with pytest.raises(ConfigError, match="search.verify_on"):
        load_scenario(
            "scenarios/quickstart.yaml",
            ["search.verify=false", "search.verify_on=labelling"],
        )
    with pytest.raises(ConfigError, match="search.verify_on"):
        load_scenario(
            "scenarios/quickstart.yaml", ["engine.kind=centralized", "search.verify_on=labelling"]
        )
    with pytest.raises(ConfigError, match="search.verify_on"):
        load_scenario("scenarios/quickstart.yaml", ["search.verify_on=others"])


def test_verify_users_limits_the_verifying_devices_and_names_the_key():
    """``search.verify_users``: a seeded sample of that many held-out devices verifies, so the
    candidates are measured on other validation items; a negative value is a one-line error."""
    import numpy as np
    import pytest

    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.errors import ConfigError
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    class Said(Silent):
        def __init__(self) -> None:
            self.said: list[str] = []

        def message(self, text: str) -> None:
            self.said.append(text)

    def run(**patch):
        scenario = scenario_from_dict(
            fleet_scenario(engine__transport="inprocess", federated__eval_every=0, **patch)
        )
        events = Said()
        results = run_federated_seed(scenario, prepare_split(scenario.data, 0), 0, events).results
        verifying = [t for t in events.said if t.startswith("verifying")]
        return verifying, [r.measured for r in results.searches.values()]

    said_all, measured_all = run()
    said_few, measured_few = run(search__verify_users=5)
    assert "on 24 devices" in said_all[0] and "on 5 devices" in said_few[0]
    assert not np.allclose(measured_all, measured_few)
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(fleet_scenario(search__verify_users=-1))
    assert err.value.path == "search.verify_users" and "\n" not in str(err.value)


def _fleet_run(observers=(), **patch):
    from fedrule.engine.federated import run_federated_seed
    from fedrule.engine.prepare import prepare_split
    from fedrule.events import Silent
    from fedrule.scenario import scenario_from_dict
    from tests.fleets import fleet_scenario

    class Said(Silent):
        def __init__(self) -> None:
            self.said: list[str] = []

        def message(self, text: str) -> None:
            self.said.append(text)

    scenario = scenario_from_dict(
        fleet_scenario(engine__transport="inprocess", federated__eval_every=0, **patch)
    )
    events = Said()
    split = prepare_split(scenario.data, 0)
    result = run_federated_seed(scenario, split, 0, events, observers=observers)
    return result.results, events.said, result.fleet


def test_per_budget_verification_with_one_budget_is_the_plain_verification():
    """One tier, user vectors kept as trained: every verifying device has the one budget and
    a refit per candidate changes nothing, so the choice and its measured value are the same."""
    one = {"fleet__tiers": [{"name": "only", "share": 1.0, "budget": 0.5}]}
    plain, _, _ = _fleet_run(federated__personalize_epochs=0, **one)
    split, _, _ = _fleet_run(federated__personalize_epochs=0, search__verify_per_budget=True, **one)
    (budget,) = plain.searches
    assert plain.searches[budget].measured == split.searches[budget].measured
    np.testing.assert_array_equal(plain.searches[budget].config, split.searches[budget].config)


def test_per_budget_verification_measures_each_budget_on_its_own_devices():
    """Budgeted mode, refits on: each budget takes a candidate that fits, measured on its own
    devices (so the measured values differ from one labelling on every verifying device)."""
    from tests.fleets import PhaseLog

    patch = {"federated__mode": "budgeted", "federated__personalize_epochs": 1}
    plain, _, _ = _fleet_run(**patch)
    log = PhaseLog()
    split, _, fleet = _fleet_run(observers=[log], search__verify_per_budget=True, **patch)
    labelled = [
        (p.name, set(fleet.budget_bytes[p.devices].tolist()), p.requests[0].as_dispatched)
        for p in log.named("verification at")
    ]
    assert [(f"verification at {b} bytes", {b}, True) for b in sorted(split.searches)] == labelled
    assert sorted(split.searches) == sorted(plain.searches)
    for budget, result in split.searches.items():
        assert result.bytes <= budget and not np.isnan(result.measured)
    assert [r.measured for r in split.searches.values()] != [
        r.measured for r in plain.searches.values()
    ]


def test_verify_per_budget_errors_name_the_key():
    import pytest

    from fedrule.errors import ConfigError
    from fedrule.scenario.load import load_scenario

    for wrong in (["search.verify=false"], ["engine.kind=centralized"]):
        with pytest.raises(ConfigError) as err:
            load_scenario("scenarios/quickstart.yaml", [*wrong, "search.verify_per_budget=true"])
        assert err.value.path == "search.verify_per_budget"
