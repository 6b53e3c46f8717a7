"""Bringing your own data: csv sniffing and options, `data info`, separator mistakes, and
what a run says and stores about the data (split, skipped users, id maps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fedrule.cli import main
from fedrule.data import load_dataset
from fedrule.data.interactions import original_ids
from fedrule.data.readers import normalize_sep
from fedrule.engine.prepare import prepare_split
from fedrule.errors import DataError
from fedrule.scenario import scenario_from_dict

TAB = (
    "userId\tmovieId\trating\ttimestamp\n"
    "1\t10\t4.0\t978300760\n"
    "1\t11\t3.5\t978300761\n"
    "2\t10\t5.0\t978300762\n"
    "2\t12\t1.0\t978300763\n"
    "1\t12\t2.0\t978300764\n"
)
PLAIN = "alice,x,4\nbob,y,5\nalice,y,3\nbob,z,1\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _info(capsys, *args: str) -> tuple[int, dict[str, str], str]:
    code = main(["data", "info", *args])
    captured = capsys.readouterr()
    rows = {}
    for line in captured.out.splitlines():
        key, _, value = line.partition(":")
        rows[key.strip()] = value.strip()
    return code, rows, captured.err


# --- sniffing and options ---------------------------------------------------------------


def test_tab_separated_with_header_is_sniffed(tmp_path: Path) -> None:
    notes: list[str] = []
    d = load_dataset("csv", path=write(tmp_path / "r.tsv", TAB), progress=notes.append)
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 3, 5)
    assert list(d.user_ids) == ["1", "2"] and d.rating is None and d.timestamp is None
    assert "sep tab (sniffed), header yes (sniffed)" in notes[0]
    warning = next(n for n in notes if n.startswith("warning:"))
    assert "column 'timestamp' looks like a timestamp" in warning
    assert "data.csv.timestamp: timestamp" in warning


def test_headerless_comma_file_is_sniffed(tmp_path: Path) -> None:
    notes: list[str] = []
    d = load_dataset("csv", path=write(tmp_path / "p.csv", PLAIN), progress=notes.append)
    assert d.n_interactions == 4 and list(d.user_ids) == ["alice", "bob"]
    assert "sep ',' (sniffed), header no (sniffed)" in notes[0]
    assert not any(n.startswith("warning") for n in notes)


def test_header_sniffing_cases(tmp_path: Path) -> None:
    numeric = write(tmp_path / "n.csv", "1,10,5,978300760\n1,11,3,978300761\n")
    assert load_dataset("csv", path=numeric).n_interactions == 2
    named = write(tmp_path / "h.csv", "user,item\nalice,x\nbob,y\n")
    assert load_dataset("csv", path=named).n_interactions == 2  # ambiguous: a header
    by_name = load_dataset("csv", path=named, csv={"user": "user", "item": "item"})
    assert list(by_name.item_ids) == ["x", "y"]
    # columns named in a headerless file: the error says how to fix it
    with pytest.raises(DataError, match=r"no header line.*data\.csv\.header: true"):
        load_dataset("csv", path=numeric, csv={"header": False, "user": "u"})


@pytest.mark.parametrize("sep", ["\t", "tab", "TAB", "\\t"])
def test_tab_spellings(tmp_path: Path, sep: str) -> None:
    f = write(tmp_path / "r.tsv", TAB)
    d = load_dataset("csv", path=f, csv={"sep": sep, "user": "userId", "item": "movieId"})
    assert d.n_interactions == 5
    assert normalize_sep(sep) == "\t"


def test_yaml_single_quoted_tab_in_a_scenario(tmp_path: Path) -> None:
    f = write(tmp_path / "r.tsv", TAB)
    text = (
        f"data:\n  source: csv\n  path: {f}\n  csv:\n    sep: '\\t'\n"
        "    user: userId\n    item: movieId\n    rating: rating\n    timestamp: timestamp\n"
    )
    scenario = scenario_from_dict(yaml.safe_load(text))
    assert scenario.data.csv.sep == "\\t"  # a backslash and a t, as YAML reads it
    split = prepare_split(scenario.data, 0)
    assert (split.n_users, split.order) == (2, "timestamp")


# --- separator mistakes -----------------------------------------------------------------


def test_wrong_separator_names_the_full_key_and_the_fix(tmp_path: Path) -> None:
    f = write(tmp_path / "r.tsv", TAB)
    with pytest.raises(DataError) as err:
        load_dataset("csv", path=f, csv={"sep": ",", "header": True, "item": 1})
    line = err.value.one_line()
    assert "column 1 (data.csv.item) is out of range" in line
    assert "the file has 1 column" in line and "set data.csv.sep: tab" in line
    with pytest.raises(DataError, match=r"data\.csv\.user.*set data\.csv\.sep: tab"):
        load_dataset("csv", path=f, csv={"sep": ",", "user": "userId", "item": "movieId"})


def test_bad_separator_value() -> None:
    with pytest.raises(DataError, match="data.csv.sep"):
        normalize_sep("")
    with pytest.raises(DataError, match="--sep"):
        normalize_sep(3, "--sep")


def test_relative_data_path_is_not_shown_as_a_key(tmp_path, tiny_scenario, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "twocol.csv", "u\tv\n1\t2\n")
    raw = {**tiny_scenario, "data": {"source": "csv", "path": "twocol.csv", "csv": {"sep": ","}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "s.yaml", "--out", "runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: twocol.csv: column 1 (data.csv.item) is out of range")
    assert "data.twocol" not in err and len(err.splitlines()) == 1
    assert "run folder" not in err  # printed only once the data has loaded
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- fedrule data info --------------------------------------------------------------------


def test_data_info_tab_separated_with_header(tmp_path: Path, capsys) -> None:
    f = str(write(tmp_path / "r.tsv", TAB))
    code, rows, err = _info(capsys, "csv", "--path", f)
    assert code == 0 and rows["interactions"] == "5" and rows["has_ratings"] == "no"
    assert "sep tab (sniffed)" in err and "--timestamp timestamp" in err
    args = ["--user", "userId", "--item", "movieId", "--rating", "rating"]
    code, rows, _ = _info(capsys, "csv", "--path", f, "--sep", "\\t", *args, "--timestamp", "3")
    assert code == 0 and rows["has_ratings"] == "yes" and rows["has_timestamps"] == "yes"
    assert (rows["users"], rows["items"]) == ("2", "3")


def test_data_info_headerless_comma_separated(tmp_path: Path, capsys) -> None:
    f = str(write(tmp_path / "p.csv", PLAIN))
    code, rows, err = _info(capsys, "csv", "--path", f, "--rating", "2")
    assert code == 0 and rows["interactions"] == "4" and rows["has_ratings"] == "yes"
    assert "header no (sniffed)" in err
    code, rows, _ = _info(capsys, "csv", "--path", f, "--no-header", "--sep", ",")
    assert code == 0 and rows["users"] == "2" and rows["has_ratings"] == "no"


def test_data_info_errors_name_the_options(tmp_path: Path, capsys) -> None:
    f = str(write(tmp_path / "r.tsv", TAB))
    code, _, err = _info(capsys, "csv", "--path", f, "--sep", ",", "--item", "1")
    assert code == 2 and "(--item) is out of range" in err and "set --sep tab" in err
    code, _, err = _info(capsys, "ml-100k", "--sep", ",")
    assert code == 2 and "--sep applies to the csv source only" in err
    code, _, err = _info(capsys)
    assert code == 2 and "--scenario" in err


def test_data_info_from_a_scenario(tmp_path: Path, capsys) -> None:
    f = write(tmp_path / "r.tsv", TAB)
    csv = {"sep": "tab", "user": "userId", "item": "movieId", "rating": "rating"}
    raw = {"data": {"source": "csv", "path": str(f), "csv": csv}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    code, rows, _ = _info(capsys, "--scenario", str(tmp_path / "s.yaml"))
    assert code == 0 and rows["has_ratings"] == "yes" and rows["interactions"] == "5"
    code, rows, _ = _info(
        capsys, "--scenario", str(tmp_path / "s.yaml"), "--set", "data.rating_threshold=3.5"
    )
    assert rows["interactions"] == "3"
    code, _, err = _info(capsys, "--scenario", str(tmp_path / "s.yaml"), "--sep", ",")
    assert code == 2 and "--sep cannot be combined with --scenario" in err


# --- the split ----------------------------------------------------------------------------


def _shuffled_scenario(path: Path, seeds: list[int], **data) -> object:
    raw = {"seeds": seeds, "data": {"source": "csv", "path": str(path), **data}}
    return scenario_from_dict(raw)


def test_split_seed_is_the_data_s_own(tmp_path: Path) -> None:
    rows = "".join(f"u{u},i{(u * 7 + k) % 30}\n" for u in range(30) for k in range(8))
    f = write(tmp_path / "log.csv", "user,item\n" + rows)
    a = prepare_split(_shuffled_scenario(f, [0]).data, 0)
    b = prepare_split(_shuffled_scenario(f, [5, 6]).data, 5)
    np.testing.assert_array_equal(a.test.items, b.test.items)
    c = prepare_split(_shuffled_scenario(f, [0], split_seed=1).data, 0)
    assert not np.array_equal(a.test.items, c.test.items)


def test_the_log_says_which_split_ran(tmp_path: Path) -> None:
    f = write(tmp_path / "r.tsv", TAB)
    notes: list[str] = []
    prepare_split(_shuffled_scenario(f, [0]).data, 0, notes.append)
    assert any("split: leave-one-out on a seeded per-user shuffle" in n for n in notes)
    assert any("data.split_seed=0" in n for n in notes)
    notes.clear()
    prepare_split(_shuffled_scenario(f, [0], csv={"timestamp": "timestamp"}).data, 0, notes.append)
    assert any("split: leave-one-out by timestamp" in n for n in notes)
    assert not any(n.startswith("warning") for n in notes)


def test_min_interactions_to_evaluate_must_be_two_or_more(tmp_path: Path) -> None:
    from fedrule.errors import ConfigError

    with pytest.raises(ConfigError, match="data.min_interactions_to_evaluate"):
        _shuffled_scenario(tmp_path / "x.csv", [0], min_interactions_to_evaluate=1)


# --- a run: metrics.json and the model file ----------------------------------------------


def _run(tmp_path: Path, tiny_scenario: dict, text: str, **data) -> Path:
    from fedrule.report.run import run_scenario

    f = write(tmp_path / "log.csv", text)
    raw = {**tiny_scenario, "data": {"source": "csv", "path": str(f), **data}}
    raw["train"] = {**raw["train"], "epochs": 1}
    scenario = scenario_from_dict(raw)
    return run_scenario(scenario, tmp_path / "runs")


def _log(users: list[str], items: list[str], per_user: int, short: str) -> str:
    rows = [
        f"{u},{items[(i * 3 + k) % len(items)]}"
        for i, u in enumerate(users)
        for k in range(per_user)
    ]
    rows += [f"{short},{items[0]}", f"{short},{items[1]}"]  # 2 interactions
    return "user,item\n" + "\n".join(rows) + "\n"


def test_run_stores_integer_id_maps_and_counts_skipped_users(tmp_path, tiny_scenario) -> None:
    users = [str(100 + 7 * u) for u in range(20)]
    items = [str(5000 + i) for i in range(15)]
    folder = _run(tmp_path, tiny_scenario, _log(users, items, 6, "-3"))
    model = torch.load(folder / "model-seed0.pt", weights_only=True)
    assert model["user_ids"].dtype == torch.int64
    assert model["user_ids"].tolist() == [int(u) for u in users] + [-3]
    assert model["item_ids"].tolist() == [int(i) for i in items]
    assert model["user"].shape[0] == len(model["user_ids"])
    assert model["item"].shape[0] == len(model["item_ids"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["dataset"]["skipped_users"] == 1
    assert metrics["dataset"]["evaluated_users"] == 20
    assert metrics["dataset"]["order"] == "shuffle" and metrics["dataset"]["split_seed"] == 0
    log = (folder / "log.txt").read_text()
    assert "1 with fewer than 3 interactions train only" in log
    assert log.index("split: ") < log.index("run folder (published")


def test_run_stores_string_id_maps_and_evaluates_two_interaction_users(
    tmp_path, tiny_scenario
) -> None:
    users = [f"user-{u}" for u in range(20)]
    items = ["007"] + [f"m{i}" for i in range(14)]  # "007" is not an integer id
    text = _log(users, items, 6, "lonely")
    folder = _run(tmp_path, tiny_scenario, text, min_interactions_to_evaluate=2)
    model = torch.load(folder / "model-seed0.pt", weights_only=True)
    assert model["user_ids"] == [*users, "lonely"]
    assert model["item_ids"] == items
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["dataset"]["skipped_users"] == 0
    assert metrics["dataset"]["evaluated_users"] == 21


def test_original_ids() -> None:
    ints = original_ids(np.array(["3", "-1", "0", "9223372036854775807"], dtype=object))
    assert isinstance(ints, np.ndarray) and ints.dtype == np.int64
    assert original_ids(np.array(["3", "03"], dtype=object)) == ["3", "03"]
    assert original_ids(np.array(["1", "9223372036854775808"], dtype=object))[1].endswith("808")
    assert original_ids(np.array(["1.0"], dtype=object)) == ["1.0"]


@pytest.mark.parametrize(
    ("text", "line", "column", "shown"),
    [
        ("user,item\n1,10\n\n2,NaN\n", 4, "item", "'NaN'"),  # a blank line is counted
        ("1,10\n2,\n", 2, "item", "empty"),
        ("u;i\n1;2\nnull;3\n", 3, "user", "'null'"),
        ('u;i\n"a\nb";1\nNA;2\n', 4, "user", "'NA'"),  # a quoted field spans lines 2-3
        ("u\ti\tr\n1\t2\t5\n None \t3\t4\n", 3, "user", "'None'"),  # fields are stripped
    ],
)
def test_a_missing_id_is_an_error_naming_file_and_line(tmp_path, text, line, column, shown):
    """NaN ids used to become a user and an item called 'NaN' (issue 26)."""
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(DataError) as err:
        load_dataset("csv", path=str(path), csv={"sep": ";" if ";" in text else None})
    assert err.value.one_line() == (
        f"{path}: line {line}: the {column} id is missing ({shown}) (every row needs a user and "
        "an item id: drop or fill such rows)"
    )


def test_a_missing_id_in_grouplens_and_recbole_files_names_the_line(tmp_path):
    udata = write(tmp_path / "u.data", "1\t2\t3\t881250949\n\nnan\t2\t3\t881250950\n")
    with pytest.raises(DataError, match="u.data: line 3: the user id is missing"):
        load_dataset("grouplens", path=str(udata))
    inter = write(tmp_path / "x.inter", "user_id:token\titem_id:token\n1\t2\n1\tNaN\n")
    with pytest.raises(DataError, match="x.inter: line 3: the item id is missing"):
        load_dataset("grouplens", path=str(inter))


def test_a_run_on_data_with_a_missing_id_is_exit_2_without_a_folder(tmp_path, capsys):
    data = write(tmp_path / "d.csv", PLAIN + "carol,NaN,2\n")
    raw = {"data": {"source": "csv", "path": str(data)}, "model": {"dim": 4, "blocks": 2}}
    scenario = write(tmp_path / "s.yaml", yaml.safe_dump(raw))
    out = tmp_path / "runs"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "d.csv: line 5: the item id is missing ('NaN')" in err
    assert not out.exists() or not any(out.iterdir())
