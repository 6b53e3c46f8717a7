"""The leakage audit: the scorer on toy cases with known answers, each attack on a constructed
upload, and the audit of a whole run (one device per message) with and without mitigations."""

import numpy as np
import pytest

from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.privacy import attacks
from fedrule.privacy.scorer import score_guess
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def test_the_scorer_on_a_toy_case_with_a_known_answer():
    # 6 items, truth {1, 4}; scores rank 4 first, then 2, then 1
    guess = attacks.Guess(
        score=np.array([0.0, 0.5, 0.8, 0.1, 0.9, 0.2]),
        named=np.array([False, False, True, False, True, False]),
    )
    result = score_guess(guess, np.array([1, 4]))
    # pairs (positive, negative): item 4 beats all 4 negatives, item 1 beats 3 of 4 -> 7/8
    assert result["auc"] == pytest.approx(7 / 8)
    assert result["prec"] == pytest.approx(0.5)  # top 2 = {4, 2}
    assert result["f1"] == pytest.approx(0.5)  # named {2, 4}: precision 1/2, recall 1/2
    perfect = score_guess(attacks.touched_rows(np.array([1, 4]), 6), np.array([1, 4]))
    assert perfect == {"auc": 1.0, "prec": 1.0, "f1": 1.0}
    ties = score_guess(attacks.Guess(np.zeros(6), np.zeros(6, bool)), np.array([1, 4]))
    assert ties["auc"] == pytest.approx(0.5)  # ties count one half


def test_the_singular_vector_attack_separates_positives_without_labels():
    rng = np.random.default_rng(0)
    n, dim = 200, 8
    user = rng.standard_normal(dim)
    popularity = rng.zipf(1.5, size=n).astype(float)
    positives = np.argsort(-popularity)[:10]  # a device's items: popular ones
    negatives = rng.choice(np.setdiff1d(np.arange(n), positives), 20, replace=False)
    rows = np.concatenate([positives, negatives])
    sign = np.r_[np.ones(10), -np.ones(20)]
    update = sign[:, None] * user * rng.uniform(0.5, 1.5, (30, 1))
    update += 0.05 * rng.standard_normal((30, dim))
    guess = attacks.singular_vector(rows, update, popularity, n)
    result = score_guess(guess, positives)
    assert result["auc"] == 1.0 and result["f1"] == 1.0


def _audited(**patch):
    scenario = scenario_from_dict(
        fleet_scenario(
            engine__transport="inprocess",
            engine__devices_per_node=1,
            privacy__audit=True,
            **patch,
        )
    )
    split = prepare_split(scenario.data, scenario.seeds[0])
    rounds = run_federated_seed(scenario, split, scenario.seeds[0], Silent()).results.rounds
    return {k: np.nanmean([r[k] for r in rounds if k in r]) for k in rounds[0] if "audit" in k}


def test_the_audit_of_a_run_finds_the_known_leaks_and_the_mitigations_blunt_some():
    plain = _audited()
    assert plain["audit_count_auc"] == 1.0  # one device's count is its training item set
    assert plain["audit_svd_auc"] >= 0.95  # the label-free attack on one device's upload
    dense = _audited(privacy__dense=True)
    assert dense["audit_touched_auc"] == pytest.approx(0.5)  # every row is uploaded
    decoys = _audited(privacy__decoys=2.0)
    assert decoys["audit_touched_auc"] < plain["audit_touched_auc"]
    assert decoys["audit_svd_auc"] < plain["audit_svd_auc"]
