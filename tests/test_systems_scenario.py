"""The device-systems keys of the scenario: defaults keep today's runs, every bad value is one
line naming the key (``fedrule validate`` exits 2), and a run that sets them is refused until
training rounds consult them."""

import pytest
import yaml

from fedrule.cli import main
from fedrule.scenario import scenario_from_dict
from fedrule.systems.in_use import keys_in_use
from tests.fleets import fleet_scenario

TIERS = [
    {"name": "watch", "share": 0.5, "budget": "1/16"},
    {"name": "tv", "share": 0.5, "budget": 1},
]


def _with(section: str, patch: dict) -> dict:
    raw = fleet_scenario(engine__transport="inprocess")
    raw.setdefault(section, {}).update(patch)
    return raw


def _tier(**keys) -> dict:
    return _with("fleet", {"tiers": [{**TIERS[0], **keys}, TIERS[1]]})


def _validate(tmp_path, capsys, raw) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (_tier(download_mbps=-5), "fleet.tiers[0].download_mbps: must be > 0"),
        (_tier(upload_mbps=0), "fleet.tiers[0].upload_mbps: must be > 0"),
        (_tier(latency_s=-0.1), "fleet.tiers[0].latency_s: must be >= 0"),
        (
            _tier(examples_per_second={"lognorml": {"median": 5}}),
            "fleet.tiers[0].examples_per_second: unknown distribution 'lognorml'",
        ),
        (
            _tier(download_mbps={"normal": {"mean": 10, "std": 5}}),
            "fleet.tiers[0].download_mbps: must be > 0 (its values divide work)",
        ),
        (
            _tier(download_mbps={"uniform": {"low": 0, "high": 5}}),
            "fleet.tiers[0].download_mbps: must be > 0",
        ),
        (
            _tier(examples_per_second={"lognormal": {"median": 5, "sigma": -1}}),
            "fleet.tiers[0].examples_per_second.lognormal.sigma: must lie in [0, 10]",
        ),
        (_tier(download_mbps="fast"), "fleet.tiers[0].download_mbps: got 'fast'"),
        (_tier(compute_speed=3), "fleet.tiers[0].compute_speed: unknown key"),
        (
            _with("federated", {"round_policy": {"kind": "deadline"}}),
            "federated.round_policy.deadline_s: must be > 0 with kind: deadline",
        ),
        (
            _with("federated", {"round_policy": {"kind": "sync", "deadline_s": 30}}),
            "federated.round_policy.deadline_s: has no effect with kind: sync",
        ),
        (
            _with("federated", {"round_policy": {"kind": "fedbuff"}}),
            "federated.round_policy.kind: got 'fedbuff'",
        ),
        (
            _with("federated", {"round_policy": {"kind": "overcommit", "overcommit": 0}}),
            "federated.round_policy.overcommit: must be > 0",
        ),
        (
            _with("federated", {"round_policy": {"kind": "async", "concurrency": 0}}),
            "federated.round_policy.concurrency: must be >= 1",
        ),
        (
            _with("federated", {"round_policy": {"kind": "async", "buffer": 0}}),
            "federated.round_policy.buffer: must be >= 1",
        ),
        (
            _with("federated", {"round_policy": {"max_staleness": -1}}),
            "federated.round_policy.max_staleness: must be >= 0",
        ),
        (
            _with("federated", {"round_policy": {"staleness": "linear"}}),
            "federated.round_policy.staleness: got 'linear'",
        ),
        (
            _with("fleet", {"systems": {"availability": {"model": "daily", "hours_per_day": 0}}}),
            "fleet.systems.availability.hours_per_day: must lie in (0, period_h = 24]",
        ),
        (
            _with("fleet", {"systems": {"availability": {"model": "charging", "start_h": 24}}}),
            "fleet.systems.availability.start_h: must lie in [0, period_h = 24)",
        ),
        (
            _with("fleet", {"systems": {"availability": {"model": "intervals"}}}),
            "fleet.systems.availability.file: model intervals needs a file",
        ),
        (
            _with("fleet", {"systems": {"availability": {"file": "w.csv"}}}),
            "fleet.systems.availability.file: has no effect with model: always",
        ),
        (
            _with("fleet", {"systems": {"availability": {"model": "weekly"}}}),
            "fleet.systems.availability.model: got 'weekly'",
        ),
        (
            _with("fleet", {"systems": {"source": "fedscale"}}),
            "fleet.systems.fedscale_capacity: source fedscale needs",
        ),
        (
            _with("fleet", {"systems": {"fedscale_capacity": "cap.pkl"}}),
            "fleet.systems.fedscale_capacity: has no effect with source: tiers",
        ),
        (
            _with("fleet", {"systems": {"source": "trace"}}),
            "fleet.systems.source: source trace reads the columns of fleet.trace",
        ),
        (
            _with(
                "fleet",
                {
                    "systems": {
                        "source": "fedscale",
                        "fedscale_capacity": "c",
                        "fedscale_augmentation": 0,
                    }
                },
            ),
            "fleet.systems.fedscale_augmentation: must be > 0",
        ),
        (
            {
                **_with("federated", {"round_policy": {"kind": "async"}}),
                "privacy": {"secure_aggregation": True},
            },
            "federated.round_policy.kind: an asynchronous buffer sums updates",
        ),
        (
            {
                **_with("federated", {"round_policy": {"kind": "overcommit"}}),
                "privacy": {"clip": 1.0, "noise_multiplier": 1.0},
            },
            "federated.round_policy.kind: keeping the K fastest",
        ),
    ],
)
def test_each_bad_value_is_one_line_naming_the_key_and_exit_2(tmp_path, capsys, raw, needle):
    code, err = _validate(tmp_path, capsys, raw)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert "Traceback" not in err


def test_good_systems_settings_validate(tmp_path, capsys):
    raw = _tier(
        examples_per_second={"lognormal": {"median": 500, "sigma": 0.5}},
        download_mbps={"normal": {"mean": 20, "std": 8, "min": 0.5}},
        upload_mbps={"uniform": {"low": 1, "high": 4}},
        latency_s=0.2,
    )
    raw["fleet"]["systems"] = {"availability": {"model": "daily", "hours_per_day": 1}}
    raw["federated"]["round_policy"] = {"kind": "deadline", "deadline_s": 60}
    code, err = _validate(tmp_path, capsys, raw)
    assert code == 0, err
    scenario = scenario_from_dict(raw)
    assert keys_in_use(scenario) == [
        "fleet.tiers[0].examples_per_second",
        "fleet.tiers[0].download_mbps",
        "fleet.tiers[0].upload_mbps",
        "fleet.tiers[0].latency_s",
        "fleet.systems.availability.model",
        "fleet.systems.availability.hours_per_day",
        "federated.round_policy.kind",
        "federated.round_policy.deadline_s",
    ]


def test_defaults_set_no_systems_key():
    assert keys_in_use(scenario_from_dict(fleet_scenario())) == []
    assert keys_in_use(scenario_from_dict({})) == []


def test_a_run_with_systems_keys_is_refused_before_training_and_leaves_nothing(tmp_path, capsys):
    raw = _with("federated", {"round_policy": {"kind": "overcommit"}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs"
    code = main(["run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "federated.round_policy.kind: device systems are not used by federated training" in err
    assert not out.exists() or not any(out.iterdir())


def test_the_documented_example_validates():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "systems.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = fleet_scenario()
    raw["fleet"] = yaml.safe_load(block)["fleet"]
    scenario = scenario_from_dict(raw)
    assert [t.name for t in scenario.fleet.tiers] == ["watch", "phone", "tv"]
    assert scenario.fleet.tiers[1].download_mbps == {"lognormal": {"median": 55.07}}
