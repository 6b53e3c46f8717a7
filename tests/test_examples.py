"""The example study of docs/examples runs from Python on the public API and writes its table."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parent.parent / "docs" / "examples" / "study.py"


@pytest.mark.slow
def test_the_example_study_runs_and_tables_every_tier(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("_example_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_example_study"] = module
    spec.loader.exec_module(module)
    args = ["--rounds", "1", "--seeds", "0", "--optimizers", "fedavg", "fedadam"]
    rows = module.main([*args, "--out", str(tmp_path)])
    tiers = ["watch", "phone", "tv", "all"]
    assert [(r["optimizer"], r["tier"]) for r in rows] == [
        (o, t) for o in ("fedavg", "fedadam") for t in tiers
    ]
    bytes_of = {r["tier"]: r["bytes"] for r in rows if r["optimizer"] == "fedavg"}
    assert bytes_of["watch"] < bytes_of["phone"] < bytes_of["tv"]  # nested prefixes by budget
    with open(tmp_path / "study.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    assert sorted(p.name.rsplit("-", 2)[0] for p in tmp_path.glob("study-*")) == [
        "study-fedadam",
        "study-fedavg",
    ]
    assert "fedadam" in capsys.readouterr().out
