"""``fedrule.registry.Registry``: names to plug-ins, fedrule's own and installed packages'."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fedrule.errors import ConfigError, FedruleError
from fedrule.registry import Registry

GROUP = "fedrule.test-toys"


def _toys() -> Registry[int]:
    registry: Registry[int] = Registry("toy", path="toy.kind", group=GROUP)
    registry.register("alpha", 1)
    registry.register("beta", 2)
    return registry


def test_an_unknown_name_is_one_line_at_the_key_listing_the_known_ones():
    toys = _toys()
    assert toys.get("beta") == 2 and toys.names() == ("alpha", "beta") and "alpha" in toys
    with pytest.raises(ConfigError) as err:
        toys.get("alpah")
    assert err.value.path == "toy.kind"
    assert str(err.value) == (
        "toy.kind: unknown toy 'alpah' (did you mean 'alpha'? known: alpha, beta)"
    )
    with pytest.raises(ConfigError) as err:
        toys.get("omega", path="run/model.pt")
    assert str(err.value) == "run/model.pt: unknown toy 'omega' (known: alpha, beta)"


def test_a_taken_name_is_refused_and_a_runtime_entry_can_go():
    toys = _toys()
    toys.register("alpha", 1)  # the same entry again: nothing changes
    with pytest.raises(ValueError, match="registered already"):
        toys.register("alpha", 3)
    toys.unregister("alpha")
    assert toys.names() == ("beta",) and list(toys) == [2]


def test_installed_plug_ins_are_listed_unloaded_and_loaded_when_asked_for(tmp_path, monkeypatch):
    """A package's entry point in the registry's group (here a distribution's metadata on
    the import path, as ``pip install`` writes it)."""
    (tmp_path / "toy_plugin.py").write_text("LOADED = []\nGAMMA = 3\nLOADED.append('gamma')\n")
    info = tmp_path / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\ngamma = toy_plugin:GAMMA\nbroken = toy_plugin:MISSING\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    toys = _toys()
    assert toys.names() == ("alpha", "beta", "broken", "gamma")
    assert "toy_plugin" not in sys.modules  # listing loads nothing
    assert toys.get("gamma") == 3
    assert toys.names() == ("alpha", "beta", "gamma", "broken")  # loaded: registered
    with pytest.raises(FedruleError) as err:
        toys.get("broken")
    assert "toy_plugin:MISSING" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.delitem(sys.modules, "toy_plugin")


def test_the_schema_checks_a_method_name_without_importing_the_algorithm_layer_first():
    """``fedrule.scenario`` imports no server code; the methods' module is imported on the
    first lookup of ``federated.method``."""
    code = (
        "import sys\n"
        "from fedrule.scenario import scenario_from_dict\n"
        "assert 'fedrule.algorithm.methods' not in sys.modules\n"
        "scenario_from_dict({'engine': {'kind': 'federated'}, 'federated': {'method': 'qr'}})\n"
        "assert 'fedrule.algorithm.methods' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
