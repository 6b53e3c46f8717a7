"""The public Python API (``fedrule.api``, re-exported by ``fedrule``): scenarios from files and
mappings with overrides, a run returned as a ``RunResult`` read back from its published folder,
any finished folder loaded again, hooks, observers and progress reaching the engine, sweeps."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml

import fedrule
from fedrule.errors import ConfigError, FedruleError
from tests.fleets import PhaseLog, fleet_scenario


def test_the_namespace_holds_the_api_imported_on_first_use():
    code = (
        "import sys, fedrule\n"
        "assert 'fedrule.api' not in sys.modules and 'torch' not in sys.modules\n"
        "assert {'run', 'load_run', 'load_scenario', 'sweep', 'RunResult', '__version__'}"
        " <= set(dir(fedrule))\n"
        "assert callable(fedrule.run) and 'fedrule.api' in sys.modules\n"
        "from fedrule import api, sweeps\n"  # the function; the package is fedrule.sweeps
        "assert fedrule.sweep is api.sweep and fedrule.sweeps is sweeps\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'runn'"):
        fedrule.runn  # noqa: B018


def test_a_scenario_from_a_file_or_a_mapping_with_either_kind_of_overrides(tmp_path, tiny_scenario):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario))
    from_file = fedrule.load_scenario(path, ["train.lr=0.05", "eval.ks=[5, 10]"])
    from_dict = fedrule.load_scenario(tiny_scenario, {"train.lr": 0.05, "eval.ks": [5, 10]})
    assert from_file == from_dict and from_dict.train.lr == 0.05
    budgets = fedrule.load_scenario(tiny_scenario, {"search.budgets": ["1/4", 4096]})
    assert [b.text for b in budgets.search.budgets] == ["1/4", "4096"]
    with pytest.raises(ConfigError, match=r"^train\.lr: expected a number"):
        fedrule.load_scenario(tiny_scenario, {"train.lr": "fast"})


@pytest.mark.slow
def test_a_run_returns_its_published_folder_read_back(tmp_path, tiny_scenario):
    lines: list[str] = []
    result = fedrule.run(tiny_scenario, out=tmp_path, progress=lines.append)
    assert result.path.parent == tmp_path and result.path.name.startswith("tiny-")
    assert result.metrics == json.loads((result.path / "metrics.json").read_text())
    assert result.scenario == fedrule.load_scenario(tiny_scenario)
    assert result.engine == "centralized" and result.seeds == [0] and result.tiers == []
    assert any(line.startswith("phase: ") for line in lines)  # the log's lines, as they came
    history = result.rounds[0]  # a centralised run's epochs, validated every second one
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert math.isnan(history[0]["valid_ndcg@10"]) and history[1]["valid_ndcg@10"] > 0
    tables = result.tables()
    assert tuple(tables["item"].shape) == (120, 16) and tables["kind"] == "centralized"
    again = fedrule.load_run(result.path)
    assert again.metrics == result.metrics and again.rounds == result.rounds
    test = again.to_pandas("test")
    assert set(test["metric"]) == set(result.metrics["test"])


@pytest.mark.slow
def test_a_federated_run_reaches_hooks_and_observers_and_reads_back_as_records(tmp_path):
    rounds_seen: list[int] = []
    phases = PhaseLog()
    scenario = fleet_scenario(engine__transport="inprocess", search__cycles=2)
    result = fedrule.run(
        scenario, tmp_path, hooks=[lambda s: rounds_seen.append(s.round)], observers=[phases]
    )
    assert rounds_seen == [1, 2]
    assert [p.name for p in phases.named("training round")] == [
        "training round 1",
        "training round 2",
    ]
    assert [t["tier"] for t in result.tiers] == ["small", "large", "all"]
    devices = result.devices[0]
    assert len(devices) == 48 and {d["tier"] for d in devices} == {"small", "large"}
    assert all(isinstance(d["accepted"], bool) and isinstance(d["device"], int) for d in devices)
    assert [r["round"] for r in result.rounds[0]] == [1, 2]
    frame = result.to_pandas("devices")
    assert list(frame["seed"].unique()) == [0] and len(frame) == 48
    assert tuple(result.tables(0)["item"].shape) == (60, 8)
    with pytest.raises(ConfigError, match="holds no model of seed 7"):
        result.tables(7)


def test_hooks_need_a_federated_run(tmp_path, tiny_scenario):
    with pytest.raises(ConfigError, match="^engine.kind: round hooks and phase observers"):
        fedrule.run(tiny_scenario, tmp_path, hooks=[print])
    assert not list(tmp_path.iterdir())


def test_a_missing_or_partial_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such run folder"):
        fedrule.load_run(tmp_path / "nowhere")
    partial = tmp_path / ".tiny-20260101-000000.123.partial"
    partial.mkdir()
    (partial / "scenario.yaml").write_text("name: tiny\n")
    with pytest.raises(ConfigError) as err:
        fedrule.load_run(partial)
    assert str(err.value) == (
        f"{partial}: is a partial run folder, not a finished one "
        "(continue it with fedrule run --resume)"
    )
    with pytest.raises(ConfigError, match="is not a finished run folder"):
        fedrule.load_run(tmp_path)


def test_to_pandas_without_pandas_names_the_install(monkeypatch, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "scenario.yaml").write_text("name: x\n")
    (folder / "metrics.json").write_text(json.dumps({"engine": "centralized", "seeds": {}}))
    result = fedrule.load_run(folder)
    with pytest.raises(ConfigError, match="unknown table 'tier'"):
        result.to_pandas("tier")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(FedruleError) as err:
        result.to_pandas("tiers")
    assert str(err.value) == "to_pandas('tiers') needs pandas (pip install pandas)"


@pytest.mark.slow
def test_a_sweep_returns_its_runs_and_summary(tmp_path, tiny_scenario):
    tiny_scenario["train"]["epochs"] = 2
    result = fedrule.sweep(
        tiny_scenario, {"model.dim": [8, 16]}, seeds=[0], parallel=2, out=tmp_path
    )
    assert result.outcome is not None and result.outcome.finished == 2
    assert list(result.runs) == ["dim-8-s0", "dim-16-s0"]
    dims = {name: run.scenario.model.dim for name, run in result.runs.items()}
    assert dims == {"dim-8-s0": 8, "dim-16-s0": 16}
    assert [row["model.dim"] for row in result.summary] == [8, 16]
    assert all(not math.isnan(row["ndcg@10"]) for row in result.summary)
    assert len(result.to_pandas("runs")) == 2
