"""Layering invariants, checked on the import graph (parsed, not grepped).

The layers of ``fedrule`` (docs/architecture.md), lowest first. A module may import from its own
top-level package and from lower layers only; packages in one layer do not import each other.
flwr appears only in ``transports/flower``; ray only in ``engine/federated.py``; the server side
(``algorithm``) never imports device or data code; no modules import each other in a circle,
inside a package or across packages; and the layer table of docs/architecture.md says the same
as ``LAYERS``.
"""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fedrule"
DOC = PACKAGE.parent / "docs" / "architecture.md"

LAYERS: list[set[str]] = [
    {"errors"},
    {
        "units",
        "events",
        "seeds",
        "pids",
        "names",
        "registry",
        "distributions",
        "interrupts",
        "killpoints",
    },
    {"lifeline"},  # processes that go with their parent; the guard of a killed run
    {"scenario"},
    {"data", "metrics"},
    {"model"},
    {"search", "fleet"},
    {"systems"},  # device systems and the simulated clock: reads the fleet
    {"protocol"},
    {"privacy"},  # accounting, attacks, threat model: used by device and algorithm alike
    {"device", "algorithm"},
    {"transports"},
    {"engine"},
    {"report", "sweeps"},
    {"api"},
    {"cli"},
    {"__main__", "__init__"},
]
# Packages whose modules still import each other in a circle, and why each may for now. A package
# leaves this list when its circle is gone (test_every_listed_cycle_still_exists says when).
KNOWN_CYCLES: dict[str, str] = {}  # package -> why its circle is tolerated (none is)
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


def _module(path: Path, root: Path) -> str:
    """The dotted module name of a file of the package ``root`` (``fedrule.report.runs``; a
    package's ``__init__``: ``fedrule.report``)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the fedrule modules it imports, anywhere in the file: under ``TYPE_CHECKING``
    and inside functions too (a deferred import is still a dependency). ``from package import
    name`` points at the submodule ``name`` when there is one, else at the package."""
    files = {_module(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the file's package, level - 1 packages up
                    up = package[: len(package) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else base)
        graph[name] = {target for target in targets if target in files and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _package_of(cycle: list[str]) -> str | None:
    """The top-level package all of a cycle's modules lie in (None: it spans packages)."""
    units = {module.split(".")[1] for module in cycle}
    return units.pop() if len(units) == 1 else None


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


def _documented_layers() -> dict[str, float]:
    """Package -> its layer in docs/architecture.md's table (``L4½`` -> 4.5)."""
    fractions = {"": 0.0, "¼": 0.25, "½": 0.5, "¾": 0.75}
    layers = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        row = re.match(r"\| L(\d+)(¼|½|¾)? \| ([^|]+) \|", line)
        if row:
            level = int(row[1]) + fractions[row[2] or ""]
            layers.update((name, level) for name in re.findall(r"`(\w+)`", row[3]))
    return layers


def test_the_documented_layers_are_the_checked_ones():
    documented = _documented_layers()
    checked = {unit for members in LAYERS for unit in members} - {"__main__", "__init__"}
    assert set(documented) == checked, "docs/architecture.md's layer table and LAYERS differ"
    for a in checked:
        for b in checked:
            if _layer(a) < _layer(b):
                assert documented[a] <= documented[b], f"{a} is documented above {b}"
            if _layer(a) == _layer(b):
                assert documented[a] == documented[b], f"{a} and {b} share a layer"


def test_no_modules_import_each_other_in_a_circle():
    unexpected = [
        " <-> ".join(cycle)
        for cycle in _cycles(_module_graph())
        if _package_of(cycle) not in KNOWN_CYCLES
    ]
    assert not unexpected, "import cycles:\n" + "\n".join(unexpected)


def test_every_listed_cycle_still_exists():
    packages = {_package_of(cycle) for cycle in _cycles(_module_graph())}
    gone = sorted(set(KNOWN_CYCLES) - packages)
    assert not gone, f"no import cycle left in {gone}: remove them from KNOWN_CYCLES"


def test_the_cycle_check_sees_type_checking_deferred_and_relative_imports(tmp_path):
    """A tiny package: a imports b only for types, b imports c inside a function, c imports a
    relatively: one cycle of three; d imports a and is in none."""
    root = tmp_path / "f"
    (root / "x").mkdir(parents=True)
    for init in (root / "__init__.py", root / "x" / "__init__.py"):
        init.write_text("")
    modules = {
        "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from f.x.b import B\n",
        "b": "def g():\n    from f.x import c\n",
        "c": "from .a import A\n",
        "d": "import f.x.a\n",
    }
    for name, text in modules.items():
        (root / "x" / f"{name}.py").write_text(text)
    graph = _module_graph(root)
    assert graph["f.x.a"] == {"f.x.b"} and graph["f.x.b"] == {"f.x.c"}
    assert graph["f.x.c"] == {"f.x.a"} and graph["f.x.d"] == {"f.x.a"}
    assert _cycles(graph) == [["f.x.a", "f.x.b", "f.x.c"]]
    assert _package_of(["f.x.a", "f.x.b"]) == "x"
    assert _package_of(["f.x.a", "f.y.d"]) is None


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
