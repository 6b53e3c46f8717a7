"""Layering invariants: flwr and ray stay in the federated layer; the server reads no device
data."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fedrule"
ENGINE_FILES = {PACKAGE / "engine" / "federated.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_federated_layer_imports_flwr_and_ray():
    for path in PACKAGE.rglob("*.py"):
        if "federated" in path.relative_to(PACKAGE).parts or path in ENGINE_FILES:
            continue
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not roots & {"flwr", "ray"}, f"{path} imports flwr/ray"


def test_server_side_code_never_touches_device_data():
    server_modules = [
        PACKAGE / "federated" / "server_app.py",
        PACKAGE / "federated" / "aggregation.py",
    ]
    for path in server_modules:
        imported = _imports(path)
        assert not any(name.startswith(("fedrule.data", "fedrule.device")) for name in imported)
        text = path.read_text()
        assert "load_device_store" not in text and "split" not in text.replace("split(", "")


def test_server_settings_carry_no_dataset():
    import dataclasses

    from fedrule.federated.server_app import ServerSettings

    names = {f.name for f in dataclasses.fields(ServerSettings)}
    assert names == {
        "scenario",
        "seed",
        "shape",
        "num_nodes",
        "devices_per_node",
        "budget_bytes",
        "tier",
        "tier_names",
    }
