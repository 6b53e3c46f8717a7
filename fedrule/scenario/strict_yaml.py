"""The YAML reader of scenario files, ``--set`` values and ``--grid`` values.

PyYAML's safe loader, stricter in three ways, each a one-line ``ConfigError``:

- a key given twice in one mapping (YAML keeps the last silently: ``rounds: 30`` then
  ``rounds: 2`` ran 2 rounds) names the dotted key and both lines;
- nesting deeper than ``MAX_DEPTH`` levels (PyYAML composes recursively: 20,000 nested ``[``
  ended in a ``RecursionError``);
- more than ``MAX_NODES`` values once aliases are expanded (nine aliases of nine aliases of ...
  is a few hundred bytes of YAML and billions of values for the scenario checks to walk).

A syntax error names its line and column.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from fedrule.errors import ConfigError

MAX_DEPTH = 32
"""Nesting levels a scenario may use (it needs 5: fleet.tiers[0].budget is 4)."""
MAX_NODES = 100_000
"""Values a scenario may hold, aliases expanded (the largest shipped one holds about 300)."""


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark | None) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.problem, self.problem_mark, self.context = str(self), mark, None


class _StrictLoader(yaml.SafeLoader):
    """A safe loader whose composer stops at ``MAX_DEPTH`` levels (before Python's stack)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, where: str) -> Any:
    """The value in ``text`` (plain Python: dicts, lists, scalars); ``where`` names the file or
    option in errors. Raises ``ConfigError`` for a syntax error (line and column), a repeated
    key, too deep nesting or too many values."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_keys(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(syntax_message(err), path=where) from None
    finally:
        loader.dispose()


def syntax_message(err: yaml.YAMLError) -> str:
    """``cannot parse YAML at line 3, column 7: <problem> (<context>)``."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or "invalid YAML"
    context = getattr(err, "context", None)
    return f"cannot parse YAML{where}: {problem}" + (f" ({context})" if context else "")


def _check_keys(root: Node, where: str) -> None:
    """Repeated keys (named with their dotted path) and the value count, walking the node tree
    without recursion (aliases are walked each time they are used, as the checks would)."""
    stack: list[tuple[Node, str]] = [(root, "")]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(
                f"holds more than {MAX_NODES:,} values (aliases expanded)", path=where
            )
        if isinstance(node, SequenceNode):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value) if not isinstance(key, MappingNode | SequenceNode) else "?"
                dotted = f"{path}.{name}" if path else name
                line = key.start_mark.line + 1
                if key.tag != "tag:yaml.org,2002:merge" and name in first:
                    raise ConfigError(
                        f"key '{dotted}' is given twice (lines {first[name]} and {line}); "
                        "YAML would keep the last one",
                        path=where,
                    )
                first[name] = line
                stack.append((value, dotted))
