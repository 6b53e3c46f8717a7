"""Secure aggregation (fedrule.privacy.secagg): Shamir sharing, exact masked sums, uniform masked
vectors, dropout recovery, the min_cohort abort, and a fleet run with and without it."""

import numpy as np
import pytest
from scipy.stats import chisquare, kstest

from fedrule.algorithm.labelling import Labels
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.privacy import secagg
from fedrule.privacy.secagg import SecAggAbort, SecAggParams
from fedrule.protocol import CountReply
from fedrule.scenario import scenario_from_dict
from tests.fleets import PhaseLog, fleet_scenario


# ---------------------------------------------------------------------- Shamir
def test_any_threshold_shares_recover_the_secret_and_fewer_do_not():
    rng = np.random.default_rng(0)
    secret = 2**126 + 12345
    xs = list(range(1, 8))
    shares = secagg.share(secret, xs, 5)
    points = list(zip(xs, shares, strict=True))
    for _ in range(10):
        pick = rng.choice(len(points), size=5, replace=False)
        assert secagg.reconstruct([points[i] for i in pick]) == secret
    assert secagg.reconstruct(points) == secret  # more than t is fine too
    assert secagg.reconstruct(points[:4]) != secret  # t - 1 shares: a random field element
    with pytest.raises(ValueError):
        secagg.share(secagg.PRIME, xs, 3)


# ---------------------------------------------------------------------- exact sums
@pytest.mark.parametrize("neighbors", [0, 4])
def test_the_masked_sum_of_integers_is_exact(neighbors):
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 10**6, size=(9, 40))
    total = secagg.secure_sum(secagg.encode_ints(x), SecAggParams(3, neighbors))
    assert np.array_equal(secagg.decode_ints(total), x.sum(axis=0))


def test_the_masked_sum_of_floats_is_within_the_fixed_point_resolution():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 30)) * 100
    total = secagg.decode_fixed(secagg.secure_sum(secagg.encode_fixed(x), SecAggParams(3)))
    resolution = 2.0**-secagg.FRACTION_BITS
    assert np.abs(total - x.sum(axis=0)).max() <= len(x) * resolution / 2 + 1e-9
    with pytest.raises(ValueError, match="magnitude"):
        secagg.encode_fixed(np.array([secagg.FLOAT_RANGE]))


def test_masks_cancel_only_in_the_sum():
    x = np.zeros((4, 16), dtype=np.uint64)
    upload = secagg.mask_cohort(x, np.ones(4, bool), SecAggParams(3))
    assert not (upload.masked == 0).any()  # each masked vector is far from its (zero) input
    self_masks = np.zeros(16, np.uint64)  # remove only the self masks: pairwise masks cancel
    for u in range(4):
        points = [
            (int(h) + 1, int.from_bytes(v.tobytes(), "big"))
            for (o, h, w), v in zip(upload.share_index, upload.shares, strict=True)
            if o == u and w == secagg.SELF
        ]
        self_masks = self_masks + secagg.self_mask(secagg.reconstruct(points), 16)
    assert np.array_equal(upload.masked.sum(axis=0, dtype=np.uint64) - self_masks, x[0])


# ---------------------------------------------------------------------- uniformity
def test_a_masked_vector_looks_uniform_whatever_the_input():
    length = 4000
    sparse = np.zeros((3, length), dtype=np.int64)
    sparse[0, :10] = 1  # a device with ten items, like a histogram
    for x in (sparse, np.full((3, length), 7)):
        masked = secagg.mask_cohort(secagg.encode_ints(x), np.ones(3, bool), SecAggParams(3))
        values = masked.masked[0]
        # Kolmogorov-Smirnov of the values scaled to [0, 1) against the uniform distribution
        assert kstest(values.astype(np.float64) / 2.0**64, "uniform").pvalue > 1e-3
        # chi-square of the bytes (all 8 of every value) against 256 equal bins
        observed = np.bincount(values.view(np.uint8), minlength=256)
        assert chisquare(observed).pvalue > 1e-3


# ---------------------------------------------------------------------- dropouts
def test_dropouts_up_to_the_threshold_still_recover_the_sum():
    rng = np.random.default_rng(3)
    n = 12
    params = SecAggParams(min_cohort=3)
    t = params.threshold_of(n)  # every device holds shares of every other's seeds
    x = rng.integers(0, 50, size=(n, 25))
    alive = np.ones(n, bool)
    alive[rng.choice(n, size=n - t, replace=False)] = False  # n - t devices drop after sharing
    total = secagg.secure_sum(secagg.encode_ints(x), params, alive)
    assert np.array_equal(secagg.decode_ints(total), x[alive].sum(axis=0))
    alive[np.flatnonzero(alive)[0]] = False  # one more: too few shares of a dropped seed
    with pytest.raises(SecAggAbort, match="too many dropouts"):
        secagg.secure_sum(secagg.encode_ints(x), params, alive)


def test_dropouts_with_a_neighbour_graph():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 50, size=(20, 25))
    alive = np.ones(20, bool)
    alive[[0, 7, 14]] = False
    total = secagg.secure_sum(secagg.encode_ints(x), SecAggParams(3, neighbors=6), alive)
    assert np.array_equal(secagg.decode_ints(total), x[alive].sum(axis=0))


# ---------------------------------------------------------------------- min_cohort
def test_below_min_cohort_the_devices_refuse_and_the_server_aborts():
    params = SecAggParams(min_cohort=5)
    x = secagg.encode_ints(np.ones((4, 8)))
    upload = secagg.mask_cohort(x, np.ones(4, bool), params)
    assert upload.masked.size == 0 and upload.shares.size == 0  # nothing is sent
    with pytest.raises(SecAggAbort, match="min_cohort") as error:
        secagg.unmask_sum(upload, 8, params)
    assert "\n" not in str(error.value)
    alive = np.array([True, True, False, False, False, True])  # 6 named, 3 survive
    with pytest.raises(SecAggAbort, match="min_cohort"):
        secagg.secure_sum(secagg.encode_ints(np.ones((6, 8))), SecAggParams(4), alive)


def test_min_cohort_is_validated():
    with pytest.raises(ConfigError, match="min_cohort"):
        scenario_from_dict(fleet_scenario(privacy__min_cohort=1))


def test_masked_replies_travel_as_wire():
    x = secagg.encode_ints(np.arange(12).reshape(3, 4))
    upload = secagg.mask_cohort(x, np.ones(3, bool), SecAggParams(3))
    reply = CountReply(counts=np.zeros(0, np.int64), **upload.reply_fields())
    back = CountReply.from_wire(reply.to_wire())
    total = secagg.unmask_sum(secagg.MaskedUpload.from_reply(back), 4, SecAggParams(3))
    assert np.array_equal(secagg.decode_ints(total), np.arange(12).reshape(3, 4).sum(axis=0))


# ---------------------------------------------------------------------- a fleet run
def _run(**patch):
    log = PhaseLog()
    scenario = scenario_from_dict(
        fleet_scenario(
            engine__transport="inprocess",
            faults__crash=0.05,  # label-phase dropouts after key sharing, recovered by Shamir
            faults__phases=["label"],
            **patch,
        )
    )
    split = prepare_split(scenario.data, scenario.seeds[0])
    result = run_federated_seed(scenario, split, scenario.seeds[0], Silent(), observers=[log])
    return result, [p.result.sums for p in log.phases if isinstance(p.result, Labels)]


def test_a_fleet_run_with_secure_aggregation_counts_and_labels_as_without():
    plain, plain_labels = _run()
    secure, secure_labels = _run(privacy__secure_aggregation=True, privacy__min_cohort=3)
    assert np.array_equal(plain.results.popularity, secure.results.popularity)
    labels = plain_labels[-1]
    assert labels.counts == secure_labels[-1].counts and sum(labels.counts.values()) > 0
    for key, sums in labels.sums.items():
        np.testing.assert_allclose(secure_labels[-1].sums[key], sums, rtol=0, atol=1e-7)
    assert plain.results.label_report["dropped_devices"] > 0  # the recovery path ran


def test_a_fleet_run_below_min_cohort_aborts():
    with pytest.raises(SecAggAbort, match="min_cohort"):
        _run(
            privacy__secure_aggregation=True,
            privacy__min_cohort=30,  # more than a request's devices
        )
