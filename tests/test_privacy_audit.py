"""The leakage audit: the scorer on toy cases with known answers, each attack on a constructed
upload, and the audit of a whole run (one device per message) with and without mitigations."""

import numpy as np
import pytest
import torch

from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.events import Silent
from fedrule.metrics import row_values_from_ranks
from fedrule.privacy import attacks
from fedrule.privacy.scorer import score_guess, score_ranks
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


def _bpr_upload(rng, n, dim, positives, negatives, popularity_free=True):
    """One device's BPR step from the table ``v`` the server sent: each positive is paired with
    ``negatives`` uniform negatives; the rows move by the pairs' BPR gradients."""
    v = rng.standard_normal((n, dim))
    user = rng.standard_normal(dim)
    update = np.zeros((n, dim))
    others = np.setdiff1d(np.arange(n), positives)
    for p in positives:
        for j in rng.choice(others, negatives, replace=False):
            weight = 1.0 / (1.0 + np.exp(user @ (v[p] - v[j])))  # sigma(-(s_p - s_j))
            update[p] += 0.1 * weight * user
            update[j] -= 0.1 * weight * user
    rows = np.flatnonzero(np.linalg.norm(update, axis=1) > 0)
    update = update[rows] + 0.002 * rng.standard_normal((rows.size, dim))
    return rows, update, v


def test_the_shadow_replay_attack_finds_positives_without_popularity():
    rng = np.random.default_rng(1)
    n, dim = 300, 8
    positives = rng.choice(n, 15, replace=False)  # not popular: popularity cannot orient
    rows, update, sent = _bpr_upload(rng, n, dim, positives, negatives=4)
    guess = attacks.shadow_replay(rows, update, sent[rows], 4, n)
    result = score_guess(guess, positives)
    assert result["auc"] >= 0.98 and result["f1"] >= 0.9
    niche = np.ones(n)
    niche[np.setdiff1d(rows, positives)] = 10.0  # this device's items are not the popular ones
    misled = attacks.singular_vector(rows, update, niche, n)  # oriented by popularity
    assert score_guess(misled, positives)["f1"] == 0.0  # it names the negatives
    # all-zero rows (a dense upload's padding) rank below every moved row
    padded = np.zeros((n, dim))
    padded[rows] = update
    dense = attacks.shadow_replay(np.arange(n), padded, sent, 4, n)
    assert dense.score[np.setdiff1d(np.arange(n), rows)].max() < dense.score[rows].min()


def test_the_test_rank_attack_inverts_a_device_report():
    ks = [10, 20, 50]
    ranks = np.array([0, 3, 9, 15, 30, 49, 60, 500])  # one test item per device (leave-one-out)
    values, _ = row_values_from_ranks(
        torch.from_numpy(ranks), torch.arange(ranks.size), ranks.size, ks
    )
    keys = list(values)
    metrics = np.stack([values[k].numpy() for k in keys], axis=1)
    guess = attacks.test_rank(keys, metrics, n_items=1000)
    exact = ranks < 50  # NDCG@50 = 1 / log2(rank + 2) pins the rank
    assert (guess.low[exact] == ranks[exact]).all() and (guess.high[exact] == ranks[exact]).all()
    assert (guess.low[~exact] == 50).all() and (guess.high[~exact] == 999).all()
    assert (guess.bucket == -1).all()  # no head/tail metrics in this report
    leak = score_ranks(guess, np.ones(ranks.size, bool), 1000)
    assert leak["test_rank_exact"] == pytest.approx(6 / 8)
    assert leak["test_rank_bits"] == pytest.approx(
        (6 * np.log2(1000) + 2 * np.log2(1000 / 950)) / 8
    )


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
    outcome = run_federated_seed(scenario, split, scenario.seeds[0], Silent())
    rounds = outcome.results.rounds
    found = {k: np.nanmean([r[k] for r in rounds if k in r]) for k in rounds[0] if "audit" in k}
    return found | outcome.extra["audit_test"]


def test_the_audit_of_a_run_finds_the_known_leaks_and_the_mitigations_blunt_some():
    plain = _audited()
    assert plain["audit_count_auc"] == 1.0  # one device's count is its training item set
    assert plain["audit_svd_auc"] >= 0.95  # the label-free attack on one device's upload
    assert plain["audit_imia_auc"] >= 0.9  # shadow replay, no popularity (60 items: collisions)
    assert plain["test_rank_exact"] > 0.1  # per-device test reports pin ranks below max K
    assert plain["test_bucket"] == 1.0  # and say whether the test item is head or tail
    dense = _audited(privacy__dense=True)
    assert dense["audit_touched_auc"] == pytest.approx(0.5)  # every row is uploaded
    decoys = _audited(privacy__decoys=2.0)
    assert decoys["audit_touched_auc"] < plain["audit_touched_auc"]
    assert decoys["audit_svd_auc"] < plain["audit_svd_auc"]
