"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``).

- README.md is the site's home page and CONTRIBUTING.md one of its pages: both are read from the
  repository root, with their links rewritten from the repository's layout (``docs/x.md``) to
  the site's (``x.md``), so that each file reads right on GitHub and in the site alike.
- The build fails when a generated page differs from what its script gives now (the results
  page and README's headline, the scenario reference, what the quickstart prints), naming the
  command that regenerates it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mkdocs is imported only when it builds the site (the docs extra)
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md"}
"""Root files shown as pages: repository path -> site path."""


def site_links(text: str) -> str:
    """A root file's Markdown links and images, rewritten for the site."""

    def target(match: re.Match) -> str:
        link = match.group(2)
        path, hash_, anchor = link.partition("#")
        if path in PAGES:
            path = PAGES[path]
        elif path.startswith("docs/"):
            path = path.removeprefix("docs/")
        return f"{match.group(1)}({path}{hash_}{anchor})"

    return re.sub(r"(\])\(([^)\s]+)\)", target, text)


def _script(relative: str) -> ModuleType:
    path = ROOT / relative
    name = f"_docs_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


CHECKS = {
    "python benchmarks/results.py --no-run": "benchmarks/results.py",
    "python docs/generate.py": "docs/generate.py",
    "python benchmarks/quickstart_output.py": "benchmarks/quickstart_output.py",
}
"""The command that regenerates some pages -> the script whose ``stale()`` lists them."""


def stale_pages() -> list[str]:
    """Every stale generated page, with the command that regenerates it."""
    return [
        f"{page} (run {command})"
        for command, script in CHECKS.items()
        for page in _script(script).stale()
    ]


def on_pre_build(config: MkDocsConfig) -> None:
    from mkdocs.exceptions import PluginError

    if pages := stale_pages():
        raise PluginError("stale generated pages: " + "; ".join(pages))


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from mkdocs.structure.files import File

    for source, page in PAGES.items():
        text = site_links((ROOT / source).read_text(encoding="utf-8"))
        files.append(File.generated(config, page, content=text))
    return files
