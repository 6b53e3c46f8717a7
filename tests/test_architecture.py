"""Layering invariants, checked on the import graph (parsed, not grepped).

The layers of ``fedrule`` (docs/architecture.md), lowest first. A module may import from its own
top-level package and from lower layers only; packages in one layer do not import each other.
flwr appears only in ``transports/flower``; ray only in ``engine/federated.py``; the server side
(``algorithm``) never imports device or data code.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fedrule"

LAYERS: list[set[str]] = [
    {"errors"},
    {"units", "events", "seeds", "pids", "killpoints"},
    {"scenario"},
    {"data", "metrics"},
    {"model"},
    {"search", "fleet"},
    {"protocol"},
    {"privacy"},  # accounting, attacks, threat model: used by device and algorithm alike
    {"device", "algorithm"},
    {"transports"},
    {"engine"},
    {"report", "sweep"},
    {"cli"},
    {"__main__", "__init__"},
]
FLWR_HOME = PACKAGE / "transports" / "flower"
RAY_HOME = {PACKAGE / "engine" / "federated.py"}


def _unit(path: Path) -> str:
    """The top-level package or module of a file (``algorithm``, ``protocol``, ...)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _layer(unit: str) -> int:
    for index, members in enumerate(LAYERS):
        if unit in members:
            return index
    raise AssertionError(f"fedrule/{unit} is in no declared layer: add it to LAYERS")


def _fedrule_units(path: Path) -> set[str]:
    units = set()
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "fedrule" and len(parts) > 1:
            units.add(parts[1])
    return units


def test_every_module_imports_only_its_own_package_or_lower_layers():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        mine = _layer(unit)
        for other in _fedrule_units(path) - {unit}:
            if _layer(other) >= mine:
                violations.append(f"{path.relative_to(PACKAGE)} imports fedrule.{other}")
    assert not violations, "\n".join(violations)


def test_flwr_only_in_the_flower_transport_and_ray_only_in_the_engine():
    for path in PACKAGE.rglob("*.py"):
        roots = {name.split(".")[0] for name in _imports(path)}
        if "flwr" in roots:
            assert FLWR_HOME in path.parents, f"{path} imports flwr"
        if "ray" in roots:
            assert path in RAY_HOME, f"{path} imports ray"


def test_server_side_code_never_touches_device_data():
    for path in (PACKAGE / "algorithm").rglob("*.py"):
        imported = _imports(path)
        assert not any(n.startswith(("fedrule.data", "fedrule.device")) for n in imported), path
        text = path.read_text()
        assert "load_device_store" not in text and "DeviceStateStore" not in text


def test_the_server_registry_carries_no_dataset():
    import dataclasses

    from fedrule.algorithm.server import FleetRegistry

    names = {f.name for f in dataclasses.fields(FleetRegistry)}
    assert names == {"n_items", "budget_bytes", "tier", "tier_names"}


def test_requests_carry_no_device_data():
    """Requests name devices and carry payloads and server choices, never interactions."""
    from fedrule.protocol import describe

    request_fields = {r["field"] for r in describe() if r["direction"] == "request"}
    assert request_fields <= {
        "devices",
        "round",
        "payloads",
        "payload_of_device",
        "stamp",
        "configs",
        "item_is_head",
        "clip",  # the server's clipping norm of the round (adaptive clipping)
        "target",  # which held-out items a labelling scores (validation, or test)
        "as_dispatched",  # devices refit per configuration, as on dispatch
    }
