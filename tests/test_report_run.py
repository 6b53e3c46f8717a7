"""A centralised run's thread setting, and the order of what a run reports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import fedrule.engine.centralized as centralized
from fedrule.events import Silent
from fedrule.scenario import scenario_from_dict


def test_engine_num_cpus_sets_torch_threads_of_a_centralised_run(monkeypatch, tiny_scenario):
    seen = []

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(centralized, "train_model", spy)
    before = torch.get_num_threads()
    split = SimpleNamespace(item_popularity=lambda: None)
    monkeypatch.setattr(centralized, "build_layout", lambda *a: SimpleNamespace())
    monkeypatch.setattr(centralized, "item_heads", lambda *a: None)
    for cpus, expected in ((1, 1), (0, before)):
        scenario = scenario_from_dict(tiny_scenario, [f"engine.num_cpus={cpus}"])
        with pytest.raises(RuntimeError, match="stop after recording"):
            centralized.run_centralized_seed(scenario, split, 0, Silent())
        assert seen[-1] == expected
        assert torch.get_num_threads() == before  # restored


def test_a_run_logs_its_threads(tmp_path, tiny_scenario):
    from fedrule.report.run import run_scenario

    scenario = scenario_from_dict(tiny_scenario, ["engine.num_cpus=1", "train.epochs=1"])
    folder = run_scenario(scenario, tmp_path)
    log = (folder / "log.txt").read_text()
    assert "torch threads: 1 (engine.num_cpus)" in log
    assert log.index("split: ") < log.index("run folder (published")
