"""Scenario validation: one-line errors that name the dotted key, overrides, resolved output."""

import pytest
import yaml

from fedrule.errors import ConfigError
from fedrule.scenario import dump_scenario, load_scenario, scenario_from_dict


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"dta": {}}, "dta", "did you mean 'data'"),
        ({"train": {"lr": "fast"}}, "train.lr", "expected a number"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "expected an integer"),
        ({"train": {"epcohs": 3}}, "train.epcohs", "did you mean 'epochs'"),
        ({"model": {"blocks": 7}}, "model.blocks", "not divisible"),
        ({"data": {"split": "lo"}}, "data.split", "did you mean 'loo'"),
        ({"data": {"ratios": [0.5, 0.5, 0.5]}}, "data.ratios", "sum to 1"),
        ({"data": {"source": "csv"}}, "data.path", "needs a file"),
        ({"eval": {"metric": "ndcg@30"}}, "eval.metric", "K in ks"),
        ({"eval": {"ks": [10, "x"]}}, "eval.ks[1]", "expected an integer"),
        ({"seeds": 3}, "seeds", "expected a list"),
        ({"data": 5}, "data", "expected a mapping"),
        ({"train": {"sampling": "sandwhich"}}, "train.sampling", "did you mean 'sandwich'"),
        ({"train": {"negative_exponent": -0.5}}, "train.negative_exponent", "[0, 2]"),
    ],
)
def test_errors_name_the_key(raw, path, fragment):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw)
    line = info.value.one_line()
    assert line.startswith(f"{path}: ")
    assert fragment in line
    assert "\n" not in line


def test_overrides_are_parsed_as_yaml_and_applied_before_validation():
    s = scenario_from_dict({}, ["train.lr=0.01", "eval.ks=[5, 20]", "data.rating_threshold=null"])
    assert s.train.lr == 0.01 and s.eval.ks == [5, 20] and s.data.rating_threshold is None
    with pytest.raises(ConfigError, match="train.lrr"):
        scenario_from_dict({}, ["train.lrr=0.01"])
    with pytest.raises(ConfigError, match="--set"):
        scenario_from_dict({}, ["train.lr"])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse YAML"):
        load_scenario(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_scenario(scalar)


def test_resolved_scenario_round_trips(tmp_path):
    s = scenario_from_dict({"name": "x", "train": {"epochs": 3}})
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_scenario(s))
    again = load_scenario(path)
    assert again == s
    assert yaml.safe_load(path.read_text())["train"]["epochs"] == 3


def test_every_schema_key_is_explained():
    from fedrule.scenario.explain import explain

    rows = explain()
    assert len({r.path for r in rows}) == len(rows)
    assert all(r.meaning and r.type for r in rows), [r.path for r in rows if not r.meaning]
    by_path = {r.path: r for r in rows}
    assert by_path["data.split"].type == "loo|ratio" and by_path["data.split"].default == "loo"
    assert by_path["data.path"].type == "str|null" and by_path["data.path"].default == "null"
    assert by_path["fleet.tiers[].name"].default == "required"
    assert by_path["model"].type == "section"


@pytest.mark.parametrize(
    ("raw", "overrides", "kind"),
    [
        ({"fleet": {"num_devices": 10}, "federated": {"rounds": 3}}, [], "federated"),
        ({"fleet": {"num_devices": 10}}, [], "federated"),
        ({"federated": {"rounds": 3}, "engine": {"devices_per_node": 4}}, [], "federated"),
        ({"train": {"epochs": 3}}, ["fleet.num_devices=10"], "centralized"),  # the file's
        ({"fleet": {"num_devices": 10}}, ["train.epochs=2"], "federated"),
        ({"train": {"epochs": 3}}, [], "centralized"),
        ({"engine": {"num_cpus": 1}}, [], "centralized"),
        ({"fleet": {"num_devices": 10}, "engine": {"kind": "centralized"}}, [], "centralized"),
        ({"fleet": {"num_devices": 10}}, ["engine.kind=centralized"], "centralized"),
    ],
)
def test_engine_kind_follows_the_file_when_left_out(raw, overrides, kind):
    """A file that describes a fleet (a fleet: or federated: section) runs federated unless it
    says otherwise; one without either runs centralised, whatever --set adds (a sweep or a
    test may set federated keys on every file); a given engine.kind always wins."""
    scenario = scenario_from_dict(raw, overrides)
    assert scenario.engine.kind == kind
    assert scenario_from_dict(yaml.safe_load(dump_scenario(scenario))) == scenario


def test_a_fleet_file_without_engine_kind_validates_as_federated(tmp_path):
    from fedrule.cli import main
    from fedrule.scenario.explain import explain

    path = tmp_path / "fleet.yaml"
    path.write_text(
        "fleet:\n  tiers:\n    - {name: a, share: 1.0, budget: 1}\nfederated:\n  rounds: 2\n"
    )
    assert load_scenario(path).engine.kind == "federated"
    assert main(["validate", str(path)]) == 0
    meaning = {r.path: r.meaning for r in explain()}["engine.kind"]
    assert "fleet:" in meaning and "federated:" in meaning
