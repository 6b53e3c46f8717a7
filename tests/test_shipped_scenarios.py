"""Every file in scenarios/ validates (fast) and runs end to end through the CLI (slow).

The runs keep each scenario's structure (engine, tiers, mode, model shape, budgets, searchers,
references, seeds) and scale only its size down with ``--set``: tiny synthetic data, one round or
epoch, few labelled configurations. A shipped file that cannot run fails here.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedrule.cli import main
from fedrule.scenario.load import with_engine_kind

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.yaml"))

SMALL = [
    "data.source=synthetic",
    "data.synthetic.users=60",
    "data.synthetic.items=120",
    "data.synthetic.interactions_per_user=12",
    "train.epochs=1",
    "train.eval_every=1",
    "eval.batch_users=64",
    "estimator.configs=10",
    "estimator.epochs=2",
    "search.cycles=3",
    "search.samples=10",
    "engine.num_cpus=2",
    "fleet.num_devices=40",
    "federated.rounds=1",
    "federated.devices_per_round=0.5",
    "federated.local_batch_size=64",
]
"""Size only; every key is valid in every scenario (an engine ignores the ones it does not read)."""


BUDGETED = {
    "name": "ml1m-fleet-budgeted",
    "federated.mode": "budgeted",
    "federated.refit_every": 0,
    "federated.start_config": "popularity",
    "search.verify_per_budget": True,
    "train.negatives": 4,
    "federated.personalize_epochs": 1,
    "train.sampling": "sandwich",
    "train.lambda_div": 0.01,
}
"""What the budgeted variant of the ML-1M fleet changes (docs/results: paired-reference)."""


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_the_budgeted_fleet_is_the_fleet_in_budgeted_mode():
    """ml1m-fleet-budgeted.yaml is ml1m-fleet.yaml with exactly the budgeted keys changed, so
    the two files cannot drift apart; compared as resolved scenarios (defaults filled in)."""
    from fedrule.scenario import load_scenario
    from fedrule.scenario.load import to_plain

    folder = SCENARIOS[0].parent
    full = _flat(to_plain(load_scenario(folder / "ml1m-fleet.yaml")))
    budgeted = _flat(to_plain(load_scenario(folder / "ml1m-fleet-budgeted.yaml")))
    changed = {k: v for k, v in budgeted.items() if full.get(k) != v}
    assert changed == BUDGETED
    assert set(full) == set(budgeted)


def test_scenarios_are_shipped():
    assert {"quickstart.yaml", "synthetic-100k.yaml", "ml1m-rule-centralized.yaml"} <= {
        p.name for p in SCENARIOS
    }


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_validates(path, capsys):
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert main(["validate", str(path), *[a for s in SMALL for a in ("--set", s)]]) == 0


CATALOGUE = {"ml-100k": 1682, "ml-1m": 3706}  # items of the registry datasets


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_budgets_hold_the_smallest_configuration(path):
    """Checked at run time against the real catalogue; here against its known size."""
    from fedrule.engine.training import build_layout
    from fedrule.scenario import load_scenario

    scenario = load_scenario(path)
    n_items = CATALOGUE.get(scenario.data.source, scenario.data.synthetic.items)
    layout = build_layout(scenario.model, np.ones(n_items))
    budgets = list(scenario.search.budgets)
    if scenario.engine.kind == "federated" and scenario.fleet.trace is None:
        budgets += [tier.budget for tier in scenario.fleet.tiers]
    for budget in budgets:
        layout.check_budget(budget.resolve(layout.full_table_bytes), f"budget {budget}")


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_runs(path, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["run", str(path), "--out", str(out), "--quiet"]
    for override in SMALL:
        args += ["--set", override]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    (folder,) = list(out.iterdir())
    shipped = yaml.safe_load(path.read_text())
    resolved = yaml.safe_load((folder / "scenario.yaml").read_text())
    expected = with_engine_kind(shipped).get("engine", {}).get("kind", "centralized")
    assert resolved["engine"]["kind"] == expected  # the file's, whatever SMALL sets
    metrics = json.loads((folder / "metrics.json").read_text())
    if resolved["engine"]["kind"] == "federated":
        tiers = [t["name"] for t in shipped["fleet"]["tiers"]]
        assert [t["name"] for t in resolved["fleet"]["tiers"]] == tiers
        assert (folder / "tiers.csv").is_file()
    else:
        assert metrics["test"]
        if resolved["search"]["budgets"]:
            assert (folder / "rule.csv").is_file()
