"""The documentation: generated pages are current, README stays short and keeps its two commands.

The generated pages are rebuilt in memory from their sources (the committed result CSVs, the
scenario schema, the captured quickstart output) and compared with the committed files, so a
change to a source without rerunning its script fails here, and ``mkdocs build --strict``
(docs/hooks.py) fails on the same checks.
"""

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _script(relative: str) -> ModuleType:
    path = ROOT / relative
    name = f"_test_docs_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


results = _script("benchmarks/results.py")
generate = _script("docs/generate.py")
quickstart = _script("benchmarks/quickstart_output.py")
hooks = _script("docs/hooks.py")


def test_the_results_page_and_readmes_headline_are_what_the_csvs_give():
    assert results.stale() == [], "run python benchmarks/results.py --no-run"


def test_the_scenario_reference_is_what_the_schema_gives():
    assert generate.stale() == [], "run python docs/generate.py"


def test_readmes_quickstart_block_is_the_captured_table():
    assert quickstart.stale() == [], "run python benchmarks/quickstart_output.py"


def test_the_scenario_reference_lists_every_key():
    from fedrule.scenario.explain import explain, explain_markdown

    page = explain_markdown()
    missing = [row.path for row in explain() if f"`{row.path}`" not in page]
    assert missing == []
    assert "| `federated.rounds` | `int` |" in page


def test_every_study_has_one_finding_and_a_section():
    page = results.page()
    for study in results.STUDIES:
        assert study.finding and "\n" not in study.finding and len(study.finding) < 300
        assert f"| [{study.title}](#{study.name}) | {study.finding} |" in page
        assert f'<a id="{study.name}"></a>' in page
    folders = {p.name for p in results.DOCS.iterdir() if p.is_dir()}
    assert folders == {study.name for study in results.STUDIES}


def test_the_headline_is_the_paired_studys_figures():
    """Hand-checked against docs/results/paired-reference/paired.csv: the watch tier in full
    mode, 0.0381396 against 0.0401459, ratio 0.949804 ± 0.0681379."""
    block = results.headline()
    assert "| watch | 1/16 (57.9 KiB) | 0.0401 | 0.0381 (95.0 ± 6.8%) |" in block
    assert "mean over 5 seeds" in block


def test_readme_is_short_and_keeps_its_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    commands = re.findall(r"```bash\n(.*?)\n```", text.split("## Two commands")[1], flags=re.S)
    run, test = commands[:2]
    setup = "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    assert run == setup + "pip install -e . && fedrule run scenarios/quickstart.yaml"
    assert test == setup + 'pip install -e ".[test]" && python -m pytest -q'
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == "python -m pytest -q"  # CI's last step is README's test command


def test_root_pages_get_site_links():
    text = (
        "[a](docs/privacy.md#who-is-trusted) ![b](docs/images/overview.png) "
        "[c](CONTRIBUTING.md) [d](README.md) [e](https://example.org/docs/x.md) [f](#local)"
    )
    assert hooks.site_links(text) == (
        "[a](privacy.md#who-is-trusted) ![b](images/overview.png) "
        "[c](contributing.md) [d](index.md) [e](https://example.org/docs/x.md) [f](#local)"
    )


def test_no_page_links_outside_the_site():
    """A relative link from a page under docs/ must stay under docs/ (MkDocs cannot serve it
    otherwise); README and CONTRIBUTING are checked by the strict build."""
    outside = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s#]+)", page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            if "://" not in target and ROOT / "docs" not in resolved.parents:
                outside.append(f"{page.relative_to(ROOT)}: {target}")
    assert outside == []
