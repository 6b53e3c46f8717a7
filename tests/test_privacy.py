"""Privacy: the threat model's table, client-level central DP (clipping, fixed denominator,
noise, Poisson sampling, accountant) and the device-side mitigations."""

from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from scipy.stats import norm

from fedrule.algorithm.aggregation import PrivateAggregator
from fedrule.algorithm.training import sample_round
from fedrule.device.update import (
    ClipUpdate,
    DecoyRows,
    DenseUpload,
    DeviceDeltas,
    UnitWeight,
    UpdatePipeline,
    privacy_pipeline,
    sum_cohort,
)
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.privacy import accounting
from fedrule.privacy.threat_model import generated_section, message_table
from fedrule.protocol import describe
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario

DOC = Path(__file__).resolve().parent.parent / "docs" / "privacy.md"


def _run(**patch):
    scenario = scenario_from_dict(fleet_scenario(engine__transport="inprocess", **patch))
    split = prepare_split(scenario.data, scenario.seeds[0])
    return run_federated_seed(scenario, split, scenario.seeds[0], Silent())


# ---------------------------------------------------------------------- threat model
def test_the_documented_message_table_is_the_generated_one():
    assert generated_section(DOC.read_text()) == message_table()


def test_every_message_field_says_what_it_reveals():
    rows = describe()
    assert rows and all(row["reveals"].strip() for row in rows)


# ---------------------------------------------------------------------- clipping
def _random_deltas(rng, devices=6, n_items=30, dim=8, blocks=4):
    rows = [rng.choice(n_items, size=rng.integers(1, 12), replace=False) for _ in range(devices)]
    row_device = np.concatenate([np.full(r.size, k) for k, r in enumerate(rows)])
    return DeviceDeltas(
        row_device=row_device,
        row_item=np.concatenate(rows),
        delta=(rng.standard_normal((row_device.size, dim)) * 3).astype(np.float32),
        kept=np.ones((row_device.size, blocks), np.float32),
        weight=rng.integers(1, 50, size=devices).astype(np.float64),
    )


def _only(deltas, members):
    """The entries of the devices ``members`` as a cohort of their own."""
    keep = np.isin(deltas.row_device, members)
    position = {int(d): i for i, d in enumerate(members)}
    return DeviceDeltas(
        np.array([position[int(d)] for d in deltas.row_device[keep]], dtype=np.int64),
        deltas.row_item[keep],
        deltas.delta[keep],
        deltas.kept[keep],
        deltas.weight[members],
    )


@pytest.mark.parametrize(
    "packing", [[[0, 1, 2, 3, 4, 5]], [[0], [1, 2], [3, 4, 5]], [[5, 0], [1, 3], [2, 4]]]
)
def test_clipping_bounds_each_device_contribution_whatever_the_packing(packing):
    rng = np.random.default_rng(3)
    deltas = _random_deltas(rng)
    pipeline = UpdatePipeline((UnitWeight(), ClipUpdate(1.5)))
    table = np.zeros((30, 8))
    for cohort in packing:
        members = np.array(cohort)
        total = sum_cohort(pipeline.apply(_only(deltas, members), []), bytes_per_block=8)
        np.add.at(table, total.rows, total.sum_wdelta)
        for device in members:  # each device alone: weight 1, norm at most C
            alone = sum_cohort(pipeline.apply(_only(deltas, np.array([device])), []), 8)
            assert np.linalg.norm(alone.sum_wdelta) <= 1.5 * (1 + 1e-6)
            assert alone.sum_w.max() == 1.0
    everyone = sum_cohort(pipeline.apply(deltas, []), 8)
    expected = np.zeros((30, 8))
    np.add.at(expected, everyone.rows, everyone.sum_wdelta)
    np.testing.assert_allclose(table, expected, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------- noise
def test_noise_is_sigma_c_over_a_fixed_denominator_on_offered_entries_only():
    n, dim, blocks = 400, 8, 4
    offered = np.zeros((n, blocks), dtype=bool)
    offered[:, :2] = True  # budgeted: only the first two blocks are ever offered
    offered[:50, 2] = True
    sigma, clip, expected_devices = 1.3, 0.5, 20.0
    agg = PrivateAggregator(
        n,
        dim,
        blocks,
        denominator=expected_devices,
        noise_std=sigma * clip,
        offered=offered,
        rng=np.random.default_rng(7),
    )
    rows = np.array([3, 10])
    agg.add(rows, np.ones((2, dim)) * 4.0, np.ones((2, blocks)) * 3)  # per-entry count 3: unused
    step, touched = agg.mean_update()
    assert step is agg.mean_update()[0]  # drawn once per round
    mask = np.repeat(offered, dim // blocks, axis=1)
    np.testing.assert_array_equal(touched, mask)
    assert (step[~mask] == 0).all()
    noise = step * expected_devices
    noise[rows] -= 4.0 * mask[rows]  # the sum itself, over the fixed denominator
    values = noise[mask]
    target = sigma * clip
    # the sample std of ~7,000 normals lies within 4% of the truth with overwhelming probability
    assert abs(values.std() / target - 1) < 0.04
    assert abs(values.mean()) < 4 * target / np.sqrt(values.size)


def test_poisson_sampling_draws_each_device_independently():
    sizes = [sample_round(0, r, 1000, 0.05, poisson=True).size for r in range(1, 201)]
    # Binomial(1000, 0.05): mean 50, std 6.9; the mean of 200 rounds is within 2 of 50
    assert abs(np.mean(sizes) - 50) < 2
    assert np.std(sizes) > 4  # the round size varies (fixed-size sampling would not)
    chosen = sample_round(0, 1, 1000, 0.05, poisson=True)
    np.testing.assert_array_equal(chosen, sample_round(0, 1, 1000, 0.05, poisson=True))


# ---------------------------------------------------------------------- accountant
@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_the_accountant_matches_dp_accounting(kind):
    q, sigma, rounds, delta = 0.02, 1.1, 50, 1e-5
    fresh = (
        dp_accounting.rdp.RdpAccountant() if kind == "rdp" else dp_accounting.pld.PLDAccountant()
    )
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    fresh.compose(event, rounds)
    assert accounting.epsilon(q, sigma, rounds, delta, kind) == pytest.approx(
        fresh.get_epsilon(delta), rel=1e-9
    )


def test_full_participation_matches_the_analytic_gaussian_mechanism():
    # q = 1: R rounds of the Gaussian mechanism are one with mu = sqrt(R) / sigma, whose exact
    # delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu) (Balle & Wang 2018)
    sigma, rounds, delta = 4.0, 9, 1e-5
    eps = accounting.epsilon(1.0, sigma, rounds, delta, "pld")
    mu = np.sqrt(rounds) / sigma
    exact = norm.cdf(mu / 2 - eps / mu) - np.exp(eps) * norm.cdf(-mu / 2 - eps / mu)
    assert exact == pytest.approx(delta, rel=0.05)
    assert accounting.epsilon(1.0, sigma, rounds, delta, "rdp") >= eps  # RDP is an upper bound


def test_the_noise_multiplier_is_solved_for_a_target_epsilon():
    sigma = accounting.noise_for_epsilon(2.0, 1e-6, 0.05, 100)
    assert accounting.epsilon(0.05, sigma, 100, 1e-6) <= 2.0 + 1e-6
    assert accounting.epsilon(0.05, sigma * 0.98, 100, 1e-6) > 2.0


@pytest.mark.slow
def test_pld_calibration_at_the_pfl_research_anchor_stays_in_memory():
    # pfl-research's benchmark: eps 2, delta 1e-6, noise for 1,000-device cohorts out of its
    # default population of 1e6 (q = 0.001), 1,500 rounds. Searching PLD from sigma = 1e-3 asked
    # for a 38 GiB array here; it is now bracketed by RDP's answer.
    rdp = accounting.noise_for_epsilon(2.0, 1e-6, 0.001, 1500, "rdp")
    pld = accounting.noise_for_epsilon(2.0, 1e-6, 0.001, 1500, "pld")
    assert rdp / 4 < pld < rdp  # PLD is the tighter accountant
    assert accounting.epsilon(0.001, pld, 1500, 1e-6, "pld") == pytest.approx(2.0, abs=1e-2)


def test_central_dp_needs_a_clipping_norm():
    with pytest.raises(ConfigError, match="privacy.clip"):
        scenario_from_dict(fleet_scenario(privacy__noise_multiplier=1.0))


# ---------------------------------------------------------------------- whole runs
def test_a_dp_run_is_reproducible_from_its_seed_and_reports_epsilon_per_round():
    patch = dict(privacy__clip=0.5, privacy__noise_multiplier=1.0, federated__rounds=3)
    first, second = _run(**patch), _run(**patch)
    np.testing.assert_array_equal(first.results.table, second.results.table)
    eps = [r["epsilon"] for r in first.results.rounds]
    assert eps == [r["epsilon"] for r in second.results.rounds]
    assert (np.diff(eps) > 0).all()
    scenario = scenario_from_dict(fleet_scenario(**patch))
    plan = accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    assert plan.delta == pytest.approx(1 / 48)
    assert eps[-1] == pytest.approx(plan.epsilon(3))
    plain = _run(federated__rounds=3)
    assert not np.allclose(plain.results.table, first.results.table)


def test_a_dp_run_does_not_depend_on_the_packing():
    patch = dict(privacy__clip=0.5, privacy__noise_multiplier=1.0, federated__rounds=2)
    base = _run(engine__devices_per_node=64, **patch)
    other = _run(engine__devices_per_node=3, engine__num_cpus=2, **patch)
    np.testing.assert_allclose(other.results.table, base.results.table, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- mitigations
def test_decoy_rows_are_untouched_items_carrying_copies_of_own_updates():
    rng = np.random.default_rng(5)
    deltas = _random_deltas(rng)
    rngs = [np.random.default_rng(k) for k in range(deltas.num_devices)]
    out = DecoyRows(2.0, 30)(deltas, rngs)
    for k in range(deltas.num_devices):
        real = deltas.row_item[deltas.row_device == k]
        mine = out.row_item[out.row_device == k]
        assert np.unique(mine).size == mine.size  # no item twice
        decoys = np.setdiff1d(mine, real)
        assert decoys.size == min(2 * real.size, 30 - real.size)
        own = np.abs(deltas.delta[deltas.row_device == k])
        for row in np.abs(out.delta[(out.row_device == k) & np.isin(out.row_item, decoys)]):
            assert (own == row).all(axis=1).any()


def test_dense_upload_covers_every_item_with_zero_padding():
    rng = np.random.default_rng(6)
    deltas = _random_deltas(rng)
    out = DenseUpload(30)(deltas, [])
    for k in range(deltas.num_devices):
        assert np.sort(out.row_item[out.row_device == k]).tolist() == list(range(30))
    np.testing.assert_allclose(out.norms(), deltas.norms())
    assert sum_cohort(out, 8).rows.size == 30


def test_the_privacy_section_builds_the_device_pipeline():
    scenario = scenario_from_dict(
        fleet_scenario(privacy__clip=1.0, privacy__noise_multiplier=1.0, privacy__decoys=1.0)
    )
    steps = privacy_pipeline(scenario.privacy, 60).steps
    assert [type(s) for s in steps] == [UnitWeight, DecoyRows, ClipUpdate]
    with pytest.raises(ConfigError, match="privacy.dense"):
        privacy_pipeline(
            scenario_from_dict(fleet_scenario(privacy__dense=True)).privacy, 60, "budgeted"
        )
