"""eval.every_device: every budget's searched configuration tested on every device, as
centralised RULE is tested on every user."""

import numpy as np
import pytest

from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def _run(personalize_epochs=0, **patch):
    scenario = scenario_from_dict(
        fleet_scenario(
            engine__transport="inprocess",
            federated__eval_every=0,
            federated__personalize_epochs=personalize_epochs,
            eval__every_device=True,
            **patch,
        )
    )
    return run_federated_seed(scenario, prepare_split(scenario.data, 0), 0, Silent()).results


@pytest.mark.parametrize("personalize_epochs", [0, 1])
def test_one_tier_every_device_equals_the_dispatched_test(personalize_epochs):
    """With one tier every device receives the one searched configuration, so testing it on
    every device measures exactly what the dispatched test measured, device by device: with
    the user vector each device holds, or refitted to that configuration as on dispatch."""
    results = _run(personalize_epochs, fleet__tiers=[{"name": "only", "share": 1.0, "budget": 0.6}])
    (budget,) = results.every_device
    assert set(results.searches) == {budget}
    measured = results.every_device[budget]
    keys = results.metric_keys
    dispatched = results.devices["metrics"][results.devices["evaluated"]]
    for key in ("ndcg@10", "recall@5", "hit@10", "tail/ndcg@10"):
        want = float(np.nanmean(dispatched[:, keys.index(key)]))
        assert measured[key] == pytest.approx(want, rel=1e-5, abs=1e-9), key


def test_two_tiers_measure_both_budgets_and_the_report_columns():
    from fedrule.report.tables import every_device_columns

    results = _run()
    assert sorted(results.every_device) == sorted(results.searches)
    small, large = sorted(results.every_device)
    assert 0 < results.every_device[small]["ndcg@10"] <= 1
    summary = [
        {"tier": "small", "budget_bytes": small},
        {"tier": "large", "budget_bytes": large},
        {"tier": "all", "budget_bytes": f"{small}..{large}"},
    ]
    every_device_columns(summary, [results.every_device] * 2, ["ndcg@10"])
    assert summary[0]["ndcg@10_every_device"] == results.every_device[small]["ndcg@10"]
    assert summary[0]["ndcg@10_every_device_std"] == 0.0
    assert "ndcg@10_every_device" not in summary[2]


def test_every_device_without_a_search_names_the_key():
    for patch in ({"federated__method": "nested"}, {"engine__kind": "centralized"}):
        with pytest.raises(ConfigError) as err:
            scenario_from_dict(fleet_scenario(eval__every_device=True, **patch))
        assert err.value.path == "eval.every_device" and "\n" not in str(err.value)


def test_run_folder_and_report_carry_the_every_device_columns(tmp_path):
    """tiers.csv gets ``<metric>_every_device`` per tier (not for "all"), and ``fedrule
    report`` shows the same figures in its summary."""
    import csv

    from fedrule.cli import main
    from fedrule.report.run import run_scenario

    raw = fleet_scenario(
        engine__transport="inprocess", federated__eval_every=0, eval__every_device=True
    )
    run = run_scenario(scenario_from_dict(raw), tmp_path / "runs")
    tiers = {r["tier"]: r for r in csv.DictReader((run / "tiers.csv").open())}
    assert tiers["all"]["ndcg@10_every_device"] == ""
    for name in ("small", "large"):
        assert 0 < float(tiers[name]["ndcg@10_every_device"]) <= 1
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    summary = {r["tier"]: r for r in csv.DictReader((out / "summary.csv").open())}
    for name in ("small", "large"):
        want = float(tiers[name]["ndcg@10_every_device"])
        assert float(summary[name]["ndcg@10_every_device"]) == pytest.approx(want, rel=1e-5)


def test_under_secure_aggregation_the_every_device_figures_are_the_same():
    """Each device's sums travel masked (one device at a time, refitted per configuration):
    the server unmasks the cohorts' sums, equal to the plain run's."""
    plain = _run(1)
    secure = _run(1, privacy__secure_aggregation=True, privacy__min_cohort=3)
    assert plain.every_device.keys() == secure.every_device.keys()
    for budget, measured in plain.every_device.items():
        for key, value in measured.items():
            assert secure.every_device[budget][key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
def test_a_resumed_run_keeps_the_every_device_figures_of_its_finished_seeds(tmp_path, monkeypatch):
    """Interrupted after seed 0 (injected at seed 1's start) and resumed: tiers.csv is the
    uninterrupted run's, every-device columns included (they averaged the fresh seeds only)."""
    import fedrule.engine.federated as federated
    from fedrule.report.run import run_scenario

    raw = fleet_scenario(engine__transport="inprocess", federated__eval_every=0)
    raw |= {"seeds": [0, 1], "eval": raw["eval"] | {"every_device": True}}
    scenario = scenario_from_dict(raw)
    whole = run_scenario(scenario, tmp_path / "whole")

    real = federated.run_federated_seed

    def killed_at_seed_1(scenario, split, seed, *args, **kwargs):
        if seed == 1:
            raise KeyboardInterrupt
        return real(scenario, split, seed, *args, **kwargs)

    monkeypatch.setattr(federated, "run_federated_seed", killed_at_seed_1)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, tmp_path / "killed")
    (partial,) = (tmp_path / "killed").glob(".*.partial")
    monkeypatch.setattr(federated, "run_federated_seed", real)
    resumed = run_scenario(scenario, tmp_path / "killed", resume=partial)
    assert "ndcg@10_every_device" in (whole / "tiers.csv").read_text()
    assert (resumed / "tiers.csv").read_text() == (whole / "tiers.csv").read_text()
