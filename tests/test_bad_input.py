"""Bad input is one line naming the key or file, exit code 2, no traceback and no run folder
(issue: reliability). Property test: random scenario values never raise anything else."""

import shutil
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedrule.cli import main
from fedrule.errors import FedruleError
from fedrule.scenario import scenario_from_dict
from tests.fleets import fleet_scenario


def _run(tmp_path, raw, capsys, *extra):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs"
    code = main(["run", str(path), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    return code, err, out


def _one_line_error(code, err, needle):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def _inprocess(**patch):
    return fleet_scenario(engine__transport="inprocess", **patch)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"name": "a/b"}, "name:"),
        ({"name": "../../x"}, "name:"),
        ({"name": ""}, "name:"),
        ({"seeds": [-1]}, "seeds:"),
        ({"fleet": {"tiers": [{"name": "t", "share": 1, "budget": float("inf")}]}}, "budget"),
        ({"fleet": {"tiers": [{"name": "t", "share": 1, "budget": float("nan")}]}}, "budget"),
        ({"fleet": {"tiers": [{"name": "t", "share": 1, "budget": 1e30}]}}, "budget"),
        ({"model": {"dim": 8, "blocks": 4, "groups": 500}}, "model.groups"),
        ({"eval": {"ks": [5, 1000], "metric": "ndcg@5"}}, "eval.ks"),
        ({"federated": {"devices_per_round": 100}}, "federated.devices_per_round"),
        ({"fleet": {"num_devices": 500}}, "fleet.num_devices"),
        ({"data": {"source": "synthetic", "synthetic": {"users": 1, "items": 30}}}, "data"),
    ],
)
def test_nonsense_is_a_one_line_error_and_leaves_nothing(tmp_path, capsys, patch, needle):
    raw = _inprocess()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    code, err, out = _run(tmp_path, raw, capsys)
    _one_line_error(code, err, needle)
    assert not out.exists() or not any(out.iterdir())


def test_out_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    code = main(["run", str(path), "--out", str(blocker), "--quiet"])
    _one_line_error(code, capsys.readouterr().err, "runs")


def test_unreachable_ray_cluster_fails_fast(tmp_path, capsys):
    raw = fleet_scenario()
    raw["engine"].update(ray_address="127.0.0.1:9", connect_timeout=2)
    started = time.perf_counter()
    code, err, _ = _run(tmp_path, raw, capsys)
    assert time.perf_counter() - started < 60
    _one_line_error(code, err, "engine.ray_address")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from fedrule.report.run import run_scenario

    out = tmp_path_factory.mktemp("runs")
    return run_scenario(scenario_from_dict(_inprocess()), out)


def test_search_refuses_a_truncated_model_file(finished_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    model = copy / "model-seed0.pt"
    model.write_bytes(model.read_bytes()[:200])
    code = main(["search", str(copy), "-b", "0.5"])
    _one_line_error(code, capsys.readouterr().err, "model-seed0.pt")


def test_search_refuses_an_edited_scenario(finished_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    text = (copy / "scenario.yaml").read_text().replace("dim: 8", "dim: 16")
    (copy / "scenario.yaml").write_text(text)
    code = main(["search", str(copy), "-b", "0.5"])
    _one_line_error(code, capsys.readouterr().err, "does not match its scenario.yaml")


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_KEYS = [
    ("name",),
    ("seeds",),
    ("model", "dim"),
    ("model", "blocks"),
    ("model", "groups"),
    ("model", "grouping"),
    ("train", "negatives"),
    ("train", "sampling"),
    ("eval", "ks"),
    ("eval", "metric"),
    ("engine", "devices_per_node"),
    ("engine", "transport"),
    ("fleet", "tiers"),
    ("federated", "devices_per_round"),
    ("federated", "server_optimizer"),
    ("federated", "rounds"),
    ("estimator", "hidden"),
    ("search", "budgets"),
    ("data", "source"),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_KEYS), value=_VALUES)
def test_random_scenario_values_never_raise_anything_but_a_one_line_error(key, value):
    raw = fleet_scenario()
    target = raw
    for part in key[:-1]:
        target = target.setdefault(part, {})
    target[key[-1]] = value
    try:
        scenario_from_dict(raw)
    except FedruleError as err:
        assert "\n" not in err.one_line()


_LINES = st.lists(
    st.one_of(
        st.binary(max_size=30),
        st.sampled_from(
            [b"device_id,budget", b"device_id,budget,tier,availability", b"1,0.5", b"2,1/8,x,2"]
        ),
        st.text(max_size=20).map(str.encode),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_LINES)
def test_random_trace_files_give_one_line_errors(tmp_path_factory, lines):
    import numpy as np

    from fedrule.fleet import fleet_from_trace

    path = tmp_path_factory.mktemp("trace") / "trace.csv"
    path.write_bytes(b"\n".join(lines))
    try:
        fleet_from_trace(path, np.array([1, 2, 3]), ["x"], 10_000, 0.0)
    except FedruleError as err:
        assert "\n" not in err.one_line()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=30),
            st.sampled_from([b"user\titem\trating", b"1\t2\t5", b"1,2,3", b"a,b", b"3::4::5"]),
        ),
        max_size=8,
    ),
    options=st.fixed_dictionaries(
        {},
        optional={
            "sep": st.sampled_from([",", "tab", "\\t", ";", "x", ""]),
            "header": st.booleans(),
            "rating": st.sampled_from(["rating", 2, 7, "nope"]),
            "timestamp": st.sampled_from([3, "time"]),
        },
    ),
)
def test_random_csv_files_give_one_line_errors(tmp_path_factory, lines, options):
    from fedrule.data.readers import read_csv

    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(b"\n".join(lines))
    try:
        read_csv(path, options)
    except FedruleError as err:
        assert "\n" not in err.one_line()


# ---------------------------------------------------------------- YAML read strictly (issue 26)
def _main_error(capsys, *args, needle):
    code = main(list(args))
    _one_line_error(code, capsys.readouterr().err, needle)


def test_a_key_given_twice_is_an_error_naming_it_and_both_lines(tmp_path, capsys):
    raw = yaml.safe_dump(_inprocess()).replace("  rounds: 2\n", "  rounds: 30\n  rounds: 2\n")
    path = tmp_path / "dup.yaml"
    path.write_text(raw)
    line = raw.splitlines().index("  rounds: 30") + 1
    out = tmp_path / "runs"
    _main_error(
        capsys,
        *("run", str(path), "--out", str(out), "--quiet"),
        needle=f"dup.yaml: key 'federated.rounds' is given twice (lines {line} and {line + 1})",
    )
    assert not out.exists()


def test_yaml_nested_20000_deep_is_one_line_not_a_recursion_error(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 20_000 + "]" * 20_000 + "\n")
    _main_error(capsys, "validate", str(path), needle="nested deeper than 32 levels")
    block = "".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "  " * 40 + "x: 1\n"
    path.write_text(block)
    _main_error(capsys, "validate", str(path), needle="nested deeper than 32 levels")


def test_an_alias_bomb_is_refused(tmp_path, capsys):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    _main_error(capsys, "validate", str(path), needle="holds more than 100,000 values")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("fleet.tiers=[{", "--set fleet.tiers: cannot parse YAML at line 1, column 3"),
        ("eval.ks=[5, 10", "--set eval.ks: cannot parse YAML at line 1, column 7"),
        ("name='abc", "--set name: cannot parse YAML"),
        ("federated={rounds: 3, rounds: 4}", "--set federated: key 'rounds' is given twice"),
        ("name=" + "[" * 5000, "--set name: cannot parse YAML at line 1, column 33: nested"),
    ],
)
def test_a_set_value_that_starts_like_yaml_must_parse(tmp_path, capsys, override, needle):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    _main_error(capsys, "validate", str(path), "--set", override, needle=needle)


def test_a_set_value_that_is_plain_text_stays_text(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    assert main(["validate", str(path), "--set", "engine.ray_address=@head:6379"]) == 0
    from fedrule.scenario import load_scenario

    loaded = load_scenario(path, ["engine.ray_address=@head:6379"])
    assert loaded.engine.ray_address == "@head:6379"


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ("eval.ks=[5,10],[20", "eval.ks: value '[20': cannot parse YAML at line 1, column 4"),
        ("federated={a: 1, a: 2}", "federated: value '{a: 1, a: 2}': key 'a' is given twice"),
        ("data.path=" + "[" * 3000, "nested deeper than 32 levels"),
    ],
)
def test_a_grid_value_is_read_as_strictly(tmp_path, capsys, grid, needle):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    out = tmp_path / "sweeps"
    _main_error(capsys, "sweep", str(path), "--grid", grid, "--out", str(out), needle=needle)
    assert not out.exists()


# ------------------------------------------------- values that meant "run until stopped" (26)
@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("federated.rounds", 1_000_000_000, "100,000"),
        ("federated.local_epochs", 10**6, "1,000"),
        ("federated.personalize_epochs", 10**6, "1,000"),
        ("train.epochs", 100_001, "100,000"),
        ("train.negatives", 5_000, "1,000"),
        ("estimator.epochs", 10**9, "100,000"),
        ("estimator.configs", 10**9, "100,000"),
        ("search.population", 10**9, "100,000"),
        ("search.cycles", 10**9, "1,000,000"),
        ("search.samples", 10**9, "10,000,000"),
        ("engine.round_timeout", ".inf", "604,800"),
        ("engine.connect_timeout", "1e12", "604,800"),
    ],
)
def test_counts_and_waits_that_would_run_forever_are_bounded(tmp_path, capsys, key, value, bound):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    out = tmp_path / "runs"
    args = ("run", str(path), "--set", f"{key}={value}", "--out", str(out), "--quiet")
    _main_error(capsys, *args, needle=f"{key}: must be <= {bound}")
    assert not out.exists()
    from fedrule.scenario.explain import explain_text

    assert f"at most {bound}" in explain_text() or key.startswith("engine.")


@pytest.mark.parametrize("parallel", ["-3", "0"])
def test_parallel_must_be_at_least_one(tmp_path, capsys, parallel):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_inprocess()))
    out = tmp_path / "sweeps"
    args = ("sweep", str(path), "--grid", "model.dim=8", "--parallel", parallel, "--out", str(out))
    _main_error(capsys, *args, needle=f"--parallel: expected a whole number >= 1, got {parallel}")
    assert not out.exists()
