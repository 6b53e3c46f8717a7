"""Plug-ins without forking: a package of its own (``tests/plugins/fedrule-toy``: a codec, a
method that dispatches it, a server optimizer with options) is found through the entry points
its ``pyproject.toml`` declares, as ``pip install`` would publish them, and runs identically in
this process and on Flower's Ray workers, which decode with the plug-in codec themselves."""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

import fedrule
from fedrule.errors import ConfigError
from fedrule.registry import CODECS, METHODS, SERVER_OPTIMIZERS
from fedrule.scenario.validate import doc
from tests.fleets import fleet_scenario

TOY = Path(__file__).parent / "plugins" / "fedrule-toy"
TOY_NAMES = {METHODS: "toy-fp16", CODECS: "fp16", SERVER_OPTIMIZERS: "decaying-fedavg"}


def install_entry_points(project: Path, site: Path) -> None:
    """``project``'s package made importable and its entry points published, as an editable
    install would: a ``.dist-info`` folder (``METADATA``, ``entry_points.txt``) on ``site``."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    groups = meta["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
            for group, points in groups.items()
        )
    )


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy package on the import path of this process and of every worker it starts (the
    engine passes ``sys.path`` on to Ray), known to fedrule only through its entry points."""
    site = tmp_path / "site"
    install_entry_points(TOY, site)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # restored afterwards
    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.syspath_prepend(str(site))
    yield
    for registry, name in TOY_NAMES.items():
        registry.unregister(name)
    for module in [m for m in sys.modules if m.split(".")[0] == "fedrule_toy"]:
        monkeypatch.delitem(sys.modules, module)


def _toy_scenario(transport: str, **options: float) -> dict:
    raw = fleet_scenario(
        engine__transport=transport,
        federated__method="toy-fp16",
        federated__server_optimizer="decaying-fedavg",
        federated__server_optimizer_options=options,
        federated__rounds=3,
        federated__eval_every=2,
    )
    # the whole table in float16 (8 values a row: 6 + 60 * 16 = 966 bytes) on every device
    raw["fleet"]["tiers"] = [
        {"name": "small", "share": 0.5, "budget": 1000},
        {"name": "large", "share": 0.5, "budget": 1},
    ]
    return raw


def test_the_plug_ins_are_listed_from_their_entry_points_and_loaded_on_first_use(toy):
    assert "toy-fp16" in METHODS.names() and "fedrule_toy" not in sys.modules
    scenario = fedrule.load_scenario(_toy_scenario("inprocess", decay=0.25))
    assert scenario.federated.server_optimizer_options == {"decay": 0.25}
    assert {"fp16", "toy-fp16", "decaying-fedavg"} <= {
        *CODECS.names(),
        *METHODS.names(),
        *SERVER_OPTIMIZERS.names(),
    }
    assert "toy-fp16" not in METHODS.own_names()  # a plug-in, not fedrule's
    from fedrule.algorithm.server_step import make_server_step

    step = make_server_step(scenario.federated)
    assert (step.lr, step.decay, step.state_dict()["steps"]) == (1.0, 0.25, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"decay": "fast"}, "federated.server_optimizer_options.decay: expected a number"),
        ({"decay": 2.0}, "federated.server_optimizer_options.decay: must lie in (0, 1]"),
        ({"dacay": 0.5}, "federated.server_optimizer_options.dacay: unknown key (did you mean"),
    ],
)
def test_a_plug_ins_options_are_checked_against_its_own_dataclass(toy, options, message):
    with pytest.raises(ConfigError) as err:
        fedrule.load_scenario(_toy_scenario("inprocess", **options))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.slow
def test_the_toy_plug_ins_run_identically_in_process_and_on_flower(toy, tmp_path, monkeypatch):
    """The Ray workers decode with the plug-in codec themselves: its decode log names
    processes other than this one, found there through the entry point alone."""
    results, decoders = {}, {}
    for transport in ("inprocess", "flower"):
        log = tmp_path / f"decoded-{transport}.txt"
        monkeypatch.setenv("FEDRULE_TOY_DECODE_LOG", str(log))
        result = fedrule.run(_toy_scenario(transport, decay=0.5), out=tmp_path / transport)
        results[transport] = result
        decoders[transport] = {int(pid) for pid in log.read_text().split()}
    assert decoders["inprocess"] == {os.getpid()}
    assert decoders["flower"] and os.getpid() not in decoders["flower"]
    a, b = results["inprocess"], results["flower"]
    np.testing.assert_array_equal(a.tables()["item"].numpy(), b.tables()["item"].numpy())
    assert a.tiers == b.tiers
    assert a.devices == b.devices
    without_time = [{k: v for k, v in r.items() if k != "seconds"} for r in a.rounds[0]]
    assert without_time == [{k: v for k, v in r.items() if k != "seconds"} for r in b.rounds[0]]
    # every device received the whole float16 table: 6 + 60 * 8 * 2 bytes
    assert {d["bytes_received"] for d in a.devices[0]} == {966}
    assert a.metrics["method"] == "toy-fp16"


# ---------------------------------------------------------------------- the other kinds
@dataclass(frozen=True)
class ScaleOptions:
    factor: float = doc("(float) what each device's update is multiplied by", 0.5)


@dataclass(frozen=True)
class ScaleUpdate:
    """A toy update step: scale each device's update (before the cohort's sum)."""

    factor: float

    def __call__(self, deltas, rngs):
        return replace(deltas, delta=deltas.delta * np.float32(self.factor))


@pytest.fixture
def registered():
    """A toy of every other kind registered at run time, as a notebook would."""
    from fedrule.device.local_optimizer import SGD
    from fedrule.device.update import UpdateStepKind
    from fedrule.privacy.attacks import Attack, Guess
    from fedrule.registry import ATTACKS, LOCAL_OPTIMIZERS, UPDATE_STEPS

    class HalfSGD(SGD):
        """SGD at half the rate on item rows (user vectors: the full rate)."""

        def step_rows(self, rows, grad, mask):
            self.local.index_add_(0, rows, grad, alpha=-self.spec.lr / 2)

    def largest_rows(seen, options):
        score = np.zeros(seen.n_items)
        score[seen.rows] = 1.0 + np.arange(seen.rows.size)
        return Guess(score, score > 0)

    entries = {
        LOCAL_OPTIMIZERS: ("half-sgd", HalfSGD),
        UPDATE_STEPS: ("scale", UpdateStepKind(lambda o, n: ScaleUpdate(o.factor), ScaleOptions)),
        ATTACKS: ("every-row", Attack("upload", largest_rows)),
    }
    for registry, (name, entry) in entries.items():
        registry.register(name, entry)
    yield
    for registry, (name, _) in entries.items():
        registry.unregister(name)


def test_an_update_step_plug_in_runs_after_fedrules_own_with_its_options(registered):
    from fedrule.device.update import ClipUpdate, DeviceDeltas, privacy_pipeline

    scenario = fedrule.load_scenario(
        fleet_scenario(),
        {"privacy.clip": 1.0, "privacy.update_steps": ["scale"]},
    )
    pipeline = privacy_pipeline(scenario.privacy, 60)
    assert pipeline.steps == (ClipUpdate(1.0), ScaleUpdate(0.5))
    deltas = DeviceDeltas(
        np.zeros(1, np.int64),
        np.zeros(1, np.int64),
        np.full((1, 2), 4.0, np.float32),
        np.ones((1, 1), np.float32),
        np.ones(1),
    )
    clipped_then_halved = pipeline.apply(deltas, []).delta  # [4, 4] clipped to norm 1, halved
    np.testing.assert_allclose(clipped_then_halved, [[0.5 * 2**-0.5] * 2], rtol=1e-6)
    private = {"privacy.noise_multiplier": 1, "privacy.clip": 1, "privacy.update_steps": ["scale"]}
    with pytest.raises(ConfigError, match=r"^privacy\.update_steps: run after clipping, outside"):
        fedrule.load_scenario(fleet_scenario(), private)
    with pytest.raises(ConfigError, match=r"^privacy\.update_steps\[0\]: unknown update step"):
        fedrule.load_scenario(fleet_scenario(), {"privacy.update_steps": ["scael"]})


def test_a_local_optimizer_plug_in_is_built_by_name_where_the_cohort_trains(registered):
    from fedrule.device.local_optimizer import make_local_optimizer
    from fedrule.device.local_spec import LocalSpec

    moved = {}
    for name in ("sgd", "half-sgd"):
        spec = LocalSpec(1, 1, 0.1, 1, 0.0, 0.0, "none", optimizer=name)
        local, users = torch.zeros(1, 2), torch.zeros(1, 2)
        owner, rows = torch.zeros(1, dtype=torch.long), torch.tensor([0])
        optimizer = make_local_optimizer(spec, local, users, owner, None, rows)
        optimizer.step(rows, torch.ones(1, 2), rows, torch.ones(1, 2))
        moved[name] = (local[0, 0].item(), users[0, 0].item())
    assert moved["sgd"] == pytest.approx((-0.1, -0.1))
    assert moved["half-sgd"] == pytest.approx((-0.05, -0.1))
    with pytest.raises(ConfigError, match="half-sgd takes no options"):
        fedrule.load_scenario(
            fleet_scenario(),
            {
                "federated.local_optimizer": "half-sgd",
                "federated.local_optimizer_options": {"a": 1},
            },
        )


@pytest.mark.slow
def test_an_attack_plug_in_is_scored_by_the_audit_beside_fedrules_own(registered, tmp_path):
    scenario = fleet_scenario(engine__transport="inprocess", federated__rounds=1)
    scenario["privacy"] = {"audit": True, "attacks": ["count", "every-row"]}
    result = fedrule.run(scenario, tmp_path)
    columns = [k for k in result.rounds[0][0] if k.startswith("audit_")]
    assert {c.rsplit("_", 1)[0] for c in columns} == {"audit_count", "audit_every-row"}
    # it names every uploaded row, as fedrule's touched attack does: the same precision
    assert 0 < result.rounds[0][0]["audit_every-row_prec"] < 1
