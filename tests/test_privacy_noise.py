"""Gaussian noise on the popularity count and the label sums, composed with the training rounds
in one epsilon."""

import math

import dp_accounting
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.metrics import ConfigSums
from fedrule.privacy import accounting, mechanisms
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

DP = dict(privacy__clip=0.5, privacy__noise_multiplier=1.0, federated__rounds=2)


def _run(**patch):
    scenario = scenario_from_dict(fleet_scenario(engine__transport="inprocess", **patch))
    split = prepare_split(scenario.data, scenario.seeds[0])
    return run_federated_seed(scenario, split, scenario.seeds[0], Silent())


# ---------------------------------------------------------------------- accounting
@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_the_run_epsilon_is_dp_accountings_answer_for_the_composed_event(kind):
    q, sigma, rounds, delta = 0.1, 1.3, 7, 1e-5
    count, label, labellings = 4.0, 6.0, 3
    fresh = (
        dp_accounting.rdp.RdpAccountant() if kind == "rdp" else dp_accounting.pld.PLDAccountant()
    )
    fresh.compose(
        dp_accounting.ComposedDpEvent(
            [
                dp_accounting.GaussianDpEvent(count),
                dp_accounting.SelfComposedDpEvent(
                    dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
                    rounds,
                ),
                dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(label), labellings),
            ]
        )
    )
    got = accounting.run_epsilon(
        q, sigma, rounds, delta, kind, count_noise=count, label_noise=label, labellings=labellings
    )
    assert got == pytest.approx(fresh.get_epsilon(delta), rel=1e-9)
    alone = accounting.epsilon(q, sigma, rounds, delta, kind)
    assert got > alone
    assert accounting.run_epsilon(q, sigma, rounds, delta, kind) == pytest.approx(alone)


def test_count_and_labels_compose_like_one_gaussian_of_the_combined_multiplier():
    # sigma 2 once and sigma 2 three times: 1/4 + 3/4 = 1, i.e. one Gaussian mechanism of
    # sigma 1, whose exact delta(epsilon) is Phi(1/2 - eps) - e^eps Phi(-1/2 - eps)
    eps = accounting.run_epsilon(
        0.0, 0.0, 0, 1e-5, "pld", count_noise=2.0, label_noise=2.0, labellings=3
    )

    def delta(e):
        return norm.cdf(0.5 - e) - math.exp(e) * norm.cdf(-0.5 - e)

    assert eps == pytest.approx(brentq(lambda e: delta(e) - 1e-5, 0.1, 20), rel=1e-3)
    assert accounting.run_epsilon(0.0, 0.0, 0, 1e-5, "pld") == 0.0  # nothing released


def test_the_planned_labellings_count_validations_refits_and_the_final_one():
    fed = scenario_from_dict(fleet_scenario(federated__rounds=5, federated__eval_every=2)).federated
    assert accounting.planned_labellings(fed) == 1 + 3  # validations after rounds 2, 4, 5
    assert accounting.planned_labellings(fed, verify=True) == 1 + 3 + 1  # search.verify
    budgeted = scenario_from_dict(
        fleet_scenario(federated__rounds=5, federated__mode="budgeted", federated__refit_every=2)
    ).federated
    assert accounting.planned_labellings(budgeted) == 1 + 2  # refits before rounds 3 and 5


def test_target_epsilon_leaves_room_for_the_count_and_the_labels():
    noisy = dict(privacy__count_noise_multiplier=3.0, privacy__label_noise_multiplier=3.0)
    base = dict(privacy__clip=0.5, privacy__target_epsilon=8.0, federated__rounds=2)
    scenario = scenario_from_dict(fleet_scenario(**base, **noisy))
    plan = accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    plain = scenario_from_dict(fleet_scenario(**base))
    alone = accounting.plan_central_dp(plain.privacy, plain.federated, 48)
    assert plan.noise_multiplier > alone.noise_multiplier
    assert plan.epsilon(2, labellings=1) == pytest.approx(8.0, abs=0.01)
    with pytest.raises(ConfigError, match=r"^privacy\.target_epsilon: "):
        tight = scenario_from_dict(
            fleet_scenario(
                **{**base, "privacy__target_epsilon": 0.5}, privacy__count_noise_multiplier=0.5
            )
        )
        accounting.plan_central_dp(tight.privacy, tight.federated, 48)


@pytest.mark.parametrize("key", ["count_noise_multiplier", "label_noise_multiplier"])
def test_noise_on_other_device_data_needs_central_dp(key):
    with pytest.raises(ConfigError, match=rf"^privacy\.{key}: needs central DP"):
        scenario_from_dict(fleet_scenario(privacy__clip=1.0, **{f"privacy__{key}": 1.0}))


# ---------------------------------------------------------------------- the mechanisms
def test_sensitivities_bound_one_devices_contribution():
    assert mechanisms.count_sensitivity(16) == 4.0
    assert mechanisms.label_sensitivity(4, 2) == pytest.approx(math.sqrt(10))  # 8 sums + 2 counts


def test_a_device_reports_each_item_once_and_at_most_max_items():
    rng = np.random.default_rng(0)
    few = mechanisms.bounded_items(np.array([5, 3, 5, 9]), 4, rng)
    assert few.tolist() == [3, 5, 9]
    many = mechanisms.bounded_items(np.arange(20)[::-1], 6, rng)
    assert many.size == 6 and np.unique(many).size == 6 and set(many) <= set(range(20))


def test_the_count_noise_is_the_multiplier_times_the_sensitivity():
    total = np.full(200_000, 10**6, np.int64)
    noised = mechanisms.noised_count(total, 3.0, 16, np.random.default_rng(1))
    assert noised.dtype == np.int64
    assert np.std(noised - total) == pytest.approx(3.0 * 4.0, rel=0.01)
    zero = mechanisms.noised_count(np.zeros(50, np.int64), 3.0, 16, np.random.default_rng(1))
    assert zero.min() >= 0  # post-processing keeps counts whole and non-negative


def test_the_label_noise_is_the_multiplier_times_the_sensitivity():
    configs = 4999  # one key: sensitivity sqrt(1 x 5000) = 70.71
    sums = ConfigSums({"ndcg@10": np.full(configs, 100.0)}, {"ndcg@10": 10**6})
    noised = mechanisms.noised_labels(sums, 0.5, np.random.default_rng(2))
    assert np.std(noised.sums["ndcg@10"] - 100.0) == pytest.approx(0.5 * math.sqrt(5000), rel=0.03)
    assert noised.counts["ndcg@10"] != 10**6
    again = mechanisms.noised_labels(sums, 0.5, np.random.default_rng(2))
    np.testing.assert_array_equal(again.sums["ndcg@10"], noised.sums["ndcg@10"])


# ---------------------------------------------------------------------- whole runs
def test_under_count_noise_each_device_counts_each_item_once_and_at_most_max_items():
    # 48 devices with 12 interactions each; a multiplier of 0.01 (std 0.017) rounds away
    out = _run(**DP, privacy__count_noise_multiplier=0.01, privacy__count_max_items=3)
    popularity = out.results.popularity
    assert popularity.sum() == 48 * 3 and popularity.max() <= 48
    plain = _run(**DP).results.popularity
    assert plain.sum() > 48 * 3


@pytest.mark.parametrize(
    "patch",
    [
        {"federated__mode": "budgeted"},  # a validation labels each budget's devices apart
        {"federated__mode": "budgeted", "search__verify_per_budget": True},
        {"federated__method": "nested"},  # one labelling per payload
    ],
)
def test_labellings_of_disjoint_devices_in_one_step_are_one_release(patch):
    """Each device labels once per validation (and per verification), whatever the split:
    the accounting composes one labelling per step (parallel composition)."""
    noisy = dict(privacy__label_noise_multiplier=2.0, federated__eval_every=1, **patch)
    out = _run(**DP, **noisy)
    scenario = scenario_from_dict(fleet_scenario(**DP, **noisy))
    plan = accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    eps = [r["epsilon"] for r in out.results.rounds]
    assert eps == pytest.approx([plan.epsilon(1, 1), plan.epsilon(2, 2)])
    if scenario.federated.method == "rule":  # + the final labelling and the verification
        assert out.results.label_report["epsilon"] == pytest.approx(plan.epsilon(2, 4))


def test_a_noised_dp_run_is_reproducible_and_its_epsilon_covers_count_and_labels():
    noisy = dict(
        privacy__count_noise_multiplier=2.0,
        privacy__label_noise_multiplier=2.0,
        federated__eval_every=1,
    )
    first, second = _run(**DP, **noisy), _run(**DP, **noisy)
    np.testing.assert_array_equal(first.results.table, second.results.table)
    np.testing.assert_array_equal(first.results.popularity, second.results.popularity)
    eps = [r["epsilon"] for r in first.results.rounds]
    assert eps == [r["epsilon"] for r in second.results.rounds]
    scenario = scenario_from_dict(fleet_scenario(**DP, **noisy))
    plan = accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    assert eps == pytest.approx([plan.epsilon(1, 1), plan.epsilon(2, 2)])  # a validation a round
    final = first.results.label_report["epsilon"]  # + the final labelling and the verification
    assert final == pytest.approx(plan.epsilon(2, 4)) and final > eps[-1]
    plain = _run(**DP, federated__eval_every=1)
    assert plain.results.rounds[-1]["epsilon"] < eps[-1]
    assert not np.array_equal(plain.results.popularity, first.results.popularity)
