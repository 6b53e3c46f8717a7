"""Adaptive clipping (Andrew et al. 2021): the clipped bits, the geometric update of C, the
update's share of the noise multiplier, and a run that moves C round by round."""

import itertools
import math

import numpy as np
import pytest

from fedrule.algorithm.dp_state import ServerPrivacy
from fedrule.device.update import ClipUpdate, DeviceDeltas, UnitWeight, UpdatePipeline, sum_cohort
from fedrule.engine.federated import run_federated_seed
from fedrule.engine.prepare import prepare_split
from fedrule.errors import ConfigError
from fedrule.events import Silent
from fedrule.privacy import accounting
from fedrule.privacy.adaptive import AdaptiveClip, plan_adaptive_clip, update_noise_multiplier
from fedrule.protocol import TrainRequest
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def _run(**patch):
    scenario = scenario_from_dict(fleet_scenario(engine__transport="inprocess", **patch))
    split = prepare_split(scenario.data, scenario.seeds[0])
    return run_federated_seed(scenario, split, scenario.seeds[0], Silent())


def _privacy(**patch):
    return scenario_from_dict(fleet_scenario(**patch)).privacy


# ---------------------------------------------------------------------- the rule
def test_the_update_keeps_its_share_of_the_noise_multiplier():
    # (1 - 1 / 2.4^2)^(-1/2) = (0.826389)^(-1/2) = 1.100038
    assert update_noise_multiplier(1.0, 1.2) == pytest.approx(1.100038, abs=1e-6)
    # (1/4 - 1/16)^(-1/2) = 0.1875^(-1/2) = 2.309401
    assert update_noise_multiplier(2.0, 2.0) == pytest.approx(2.309401, abs=1e-6)


def test_too_little_bit_noise_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"^privacy\.clip_count_stddev: "):
        update_noise_multiplier(2.0, 1.0)  # needs 2 sigma_b > sigma


def test_the_clip_moves_geometrically_towards_the_target_quantile():
    rule = AdaptiveClip(1.0, 0.5, 0.2, 0.0, 10.0)
    assert rule.next_clip(1.0, 0.9) == pytest.approx(math.exp(-0.08))  # 0.923116: too many below
    assert rule.next_clip(2.0, 0.1) == pytest.approx(2 * math.exp(0.08))  # 2.166574
    assert rule.next_clip(3.0, 0.5) == 3.0
    rng = np.random.default_rng(0)
    assert rule.noised_share(7, rng) == 0.7  # sigma_b 0: 7 of 10 expected devices


def test_the_default_bit_noise_is_the_expected_cohort_over_20():
    privacy = _privacy(privacy__clip=1.0, privacy__clip_quantile=0.3)
    rule = plan_adaptive_clip(privacy, 24.0)
    assert rule is not None
    assert (rule.initial, rule.target_quantile, rule.lr) == (1.0, 0.3, 0.2)
    assert rule.count_stddev == pytest.approx(1.2)
    assert plan_adaptive_clip(_privacy(privacy__clip=1.0), 24.0) is None


def test_the_dp_plan_noises_the_update_with_sigma_delta_and_accounts_sigma():
    scenario = scenario_from_dict(
        fleet_scenario(privacy__clip=0.5, privacy__noise_multiplier=1.0, privacy__clip_quantile=0.5)
    )
    plan = accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    assert plan.clip_count_stddev == pytest.approx(1.2)  # 0.5 x 48 / 20
    assert plan.update_noise_std(2.0) == pytest.approx(2.0 * 1.100038, abs=1e-5)
    assert plan.epsilon(3) == pytest.approx(accounting.epsilon(0.5, 1.0, 3, 1 / 48))


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        (dict(privacy__clip=1.0, privacy__clip_quantile=1.0), "privacy.clip_quantile"),
        (dict(privacy__clip_quantile=0.5), "privacy.clip"),
        (
            dict(privacy__clip=1.0, privacy__clip_quantile=0.5, privacy__clip_lr=0),
            "privacy.clip_lr",
        ),
        (
            dict(privacy__clip=1.0, privacy__clip_quantile=0.5, privacy__clip_count_stddev=-1),
            "privacy.clip_count_stddev",
        ),
        (
            dict(
                privacy__clip=1.0,
                privacy__noise_multiplier=4.0,
                privacy__clip_quantile=0.5,
                privacy__clip_count_stddev=1.0,
            ),
            "privacy.clip_count_stddev",
        ),
    ],
)
def test_bad_adaptive_clipping_values_name_their_key(patch, key):
    with pytest.raises(ConfigError) as caught:
        scenario = scenario_from_dict(fleet_scenario(**patch))
        accounting.plan_central_dp(scenario.privacy, scenario.federated, 48)
    assert caught.value.one_line().startswith(f"{key}: ")
    assert "\n" not in caught.value.one_line()


# ---------------------------------------------------------------------- the devices' bits
def _two_devices() -> DeviceDeltas:
    # device 0: rows (3, 0) and (0, 4), norm 5; device 1: one row (0.3, 0.4), norm 0.5
    return DeviceDeltas(
        row_device=np.array([0, 0, 1]),
        row_item=np.array([2, 7, 2]),
        delta=np.array([[3.0, 0.0], [0.0, 4.0], [0.3, 0.4]], np.float32),
        kept=np.ones((3, 1), np.float32),
        weight=np.array([5.0, 2.0]),
    )


def test_each_device_reports_whether_its_norm_was_within_the_clip_and_only_the_sum_travels():
    clipped = ClipUpdate(1.0)(_two_devices(), [])
    assert clipped.below_clip.tolist() == [False, True]
    assert np.linalg.norm(clipped.delta[:2]) == pytest.approx(1.0)
    assert sum_cohort(clipped, 4).clip_below == 1
    wide = ClipUpdate(5.0)(_two_devices(), [])
    assert sum_cohort(wide, 4).clip_below == 2  # norm 5 <= 5 counts as within
    assert sum_cohort(_two_devices(), 4).clip_below == 0  # no clipping: no bits


def test_a_train_request_clip_replaces_the_pipelines_clip():
    pipeline = UpdatePipeline((UnitWeight(), ClipUpdate(1.0)))
    assert pipeline.with_clip(0.0) is pipeline
    moved = pipeline.with_clip(6.0)
    assert moved.steps == (UnitWeight(), ClipUpdate(6.0))
    request = TrainRequest(
        round=1,
        devices=np.arange(2),
        payloads=(b"x",),
        payload_of_device=np.zeros(2, np.int64),
        clip=6.0,
    )
    assert TrainRequest.from_wire(request.to_wire()).clip == 6.0


def test_the_server_restores_the_clip_from_the_rounds_table():
    scenario = scenario_from_dict(fleet_scenario(privacy__clip=2.0, privacy__clip_quantile=0.5))
    server = ServerPrivacy.of(scenario, 0, 48)
    assert server.request_clip(server.clip) == 2.0
    first, clip = server.after_round(1, 20, server.clip)
    second, clip = server.after_round(2, 3, clip)
    resumed = ServerPrivacy.of(scenario, 0, 48)
    assert resumed.clip_after([{"round": 1, **first}, {"round": 2, **second}]) == clip
    assert second["clip"] == pytest.approx(2.0 * math.exp(-0.2 * (first["clip_below"] - 0.5)))


# ---------------------------------------------------------------------- whole runs
def test_a_run_moves_the_clip_by_the_summed_bits_of_every_cohort():
    # sigma_b ~ 0 and no central DP: the noised share is the true share of the 24 expected
    # devices; a huge C holds every update (all below: C shrinks), a tiny one none (C grows)
    patch = dict(federated__rounds=3, privacy__clip_quantile=0.5, privacy__clip_count_stddev=1e-12)
    big = _run(privacy__clip=1e3, **patch).results.rounds
    for row, after in itertools.pairwise(big):
        assert row["clip_below"] == pytest.approx(row["trained"] / 24, abs=1e-9)
        assert after["clip"] == pytest.approx(
            row["clip"] * math.exp(-0.2 * (row["trained"] / 24 - 0.5))
        )
    assert big[0]["clip"] == 1e3
    small = _run(privacy__clip=1e-6, **patch).results.rounds
    assert [r["clip_below"] for r in small] == pytest.approx([0, 0, 0], abs=1e-9)
    assert small[2]["clip"] == pytest.approx(1e-6 * math.exp(0.1) ** 2)


def test_an_adaptive_dp_run_is_reproducible_and_keeps_the_accountants_sigma():
    patch = dict(
        privacy__clip=0.5,
        privacy__noise_multiplier=1.0,
        privacy__clip_quantile=0.5,
        federated__rounds=3,
    )
    first, second = _run(**patch), _run(**patch)
    np.testing.assert_array_equal(first.results.table, second.results.table)
    columns = ("clip", "clip_below", "epsilon", "loss")
    assert [[r[c] for c in columns] for r in first.results.rounds] == [
        [r[c] for c in columns] for r in second.results.rounds
    ]
    clips = [r["clip"] for r in first.results.rounds]
    assert clips[0] == 0.5 and len(set(clips)) == 3
    fixed = _run(privacy__clip=0.5, privacy__noise_multiplier=1.0, federated__rounds=3)
    assert [r["epsilon"] for r in first.results.rounds] == [
        r["epsilon"] for r in fixed.results.rounds
    ]
