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


def _advised(path: Path) -> list[str]:
    """The ``--set`` options of the command a scenario's header comment advises (its indented
    lines), if any."""
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("#  "):  # an indented command line
            header.append(line.lstrip("#"))
    words = " ".join(header).replace("\\", " ").split()
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--set"]


VARIANTS = [(path, []) for path in SCENARIOS] + [
    (path, _advised(path)) for path in SCENARIOS if _advised(path)
]


def test_the_fleets_header_advises_a_budgeted_variant():
    (advised,) = [_advised(p) for p in SCENARIOS if p.name == "ml1m-fleet.yaml"]
    assert "federated.mode=budgeted" in advised and "federated.start_config=popularity" in advised


def _id(variant: tuple[Path, list[str]]) -> str:
    path, extra = variant
    return path.stem + "".join(f"[{e}]" for e in extra)


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
@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_shipped_scenario_runs(variant, tmp_path, capsys):
    path, extra = variant
    out = tmp_path / "runs"
    args = ["run", str(path), "--out", str(out), "--quiet"]
    for override in [*SMALL, *extra]:
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
