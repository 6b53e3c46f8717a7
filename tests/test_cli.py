"""The command line: a real end-to-end run, and one-line errors with exit code 2."""

import json

import pytest
import yaml

from fedrule.cli import main


def _write(tmp_path, raw, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_run_writes_a_complete_run_folder(tmp_path, tiny_scenario, capsys):
    path = _write(tmp_path, tiny_scenario)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--set", "train.epochs=2"]) == 0
    (folder,) = list(out.iterdir())
    names = {p.name for p in folder.iterdir()}
    assert {"scenario.yaml", "metrics.json", "results.csv", "log.txt", "model-seed0.pt"} <= names
    resolved = yaml.safe_load((folder / "scenario.yaml").read_text())
    assert resolved["train"]["epochs"] == 2
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 <= metrics["test"]["ndcg@10"]["mean"] <= 1
    assert "ndcg@10" in capsys.readouterr().out


def test_same_seed_same_numbers(tmp_path, tiny_scenario):
    from fedrule.report.run import run_scenario
    from fedrule.scenario import scenario_from_dict

    scenario = scenario_from_dict(tiny_scenario, ["train.epochs=2"])
    first = json.loads((run_scenario(scenario, tmp_path / "a") / "metrics.json").read_text())
    second = json.loads((run_scenario(scenario, tmp_path / "b") / "metrics.json").read_text())
    assert first["test"] == second["test"]


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"lr": "x"}}, "train.lr: expected a number"),
        ({"data": {"source": "ml-10k"}}, "ml-10k"),
        ({"data": {"source": "csv", "path": "/nonexistent/file.csv"}}, "/nonexistent/file.csv"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run_folder(
    tmp_path, tiny_scenario, capsys, patch, fragment
):
    raw = {**tiny_scenario, **patch}
    if "data" in patch:
        raw["data"] = {**tiny_scenario["data"], **patch["data"]}
    path = _write(tmp_path, raw)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err
    assert len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_missing_scenario_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such scenario file" in capsys.readouterr().err


def test_validate_explain_prints_every_key_with_type_default_and_meaning(capsys):
    from fedrule.scenario.explain import explain

    assert main(["validate", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "type", "default", "meaning"]
    keys = [line.split()[0] for line in lines[1:]]
    assert keys == [row.path for row in explain()]
    assert {"train.lr", "fleet.tiers[].budget", "search.searcher"} <= set(keys)
    searcher = next(line for line in lines if line.startswith("search.searcher "))
    assert searcher.split()[1:3] == ["evolution|greedy|uniform|random", "evolution"]


def test_validate_needs_a_file_unless_explaining(capsys):
    assert main(["validate"]) == 2
    assert "--explain" in capsys.readouterr().err


def test_folders_of_killed_runs_are_cleaned(tmp_path, tiny_scenario):
    from fedrule.report.rundir import RunDir

    stale = tmp_path / ".old-20260101-000000.999999999.partial"
    stale.mkdir(parents=True)
    with RunDir(tmp_path, "x") as run:
        run.write_text("a.txt", "a")
        run.write_json("metrics.json", {})
        run.commit()
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == [run.final.name]


def test_ctrl_c_is_exit_130_with_a_message(monkeypatch, tmp_path, tiny_scenario, capsys):
    import fedrule.report.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fedrule.report.run, "run_scenario", interrupted)
    path = _write(tmp_path, tiny_scenario)
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 130
    assert "interrupted" in capsys.readouterr().err
