"""Capture what ``fedrule run scenarios/quickstart.yaml`` prints, into the docs.

Runs README's main command once (a few minutes on 2 cores) into a temporary folder, as a log
file sees it (not a terminal: progress as at most 20 lines per phase instead of bars), and
writes:

- ``docs/quickstart.md``: the whole console output, with the commit, date, machine and time;
- README's block between ``quickstart:begin`` and ``quickstart:end``: the result table it ends
  with (its standard output).

    python benchmarks/quickstart_output.py

Run it again whenever the console output changes (``tests/test_docs.py`` checks that the README
block is the one in ``docs/quickstart.md``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "quickstart.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
SCENARIO = "scenarios/quickstart.yaml"
COLUMNS = 80  # the console width the output is laid out for, unless --columns says otherwise


def capture(columns: int = COLUMNS) -> tuple[str, str, float]:
    """The run's standard error (progress and messages) and standard output (the result table),
    with the temporary output folder shown as ``runs``, and its wall-clock seconds."""
    env = {**os.environ, "COLUMNS": str(columns), "FLWR_TELEMETRY_ENABLED": "0"}
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "fedrule", "run", SCENARIO, "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fedrule run {SCENARIO} failed ({done.returncode}):\n{done.stderr}")
    return _shown(done.stderr, out), _shown(done.stdout, out), seconds


def _shown(text: str, out: Path) -> str:
    return text.replace(str(out), "runs").rstrip() + "\n"


def commit() -> str:
    """The checked-out commit, marked ``-dirty`` when tracked files differ from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("-dirty" if dirty else "")


def page(log: str, table: str, seconds: float, columns: int = COLUMNS) -> str:
    today = datetime.date.today().isoformat()
    return "\n".join(
        [
            "# What the quickstart prints",
            "",
            f"`fedrule run {SCENARIO}` (README's main command, after its setup), captured by "
            f"`python benchmarks/quickstart_output.py` at commit `{commit()}` on {today}, on a "
            f"machine with {os.cpu_count()} CPU cores: {seconds:.0f} s in all, including the "
            "start of Ray. Do not edit: rerun the script.",
            "",
            "A terminal shows a progress bar per phase; this is the output as a log file gets "
            f"it (at most 20 lines per phase), {columns} characters wide. The progress and "
            "messages go to standard error:",
            "",
            "```text",
            log.rstrip(),
            "```",
            "",
            "and the result table to standard output:",
            "",
            "```text",
            table.rstrip(),
            "```",
            "",
            "The same figures, and more, are in the run folder: `tiers.csv`, `metrics.json` and "
            "the per-device `devices-seed0.csv` ([Output](output.md)).",
            "",
        ]
    )


def readme_block(table: str) -> str:
    return "\n".join([BEGIN, "```text", table.rstrip(), "```", END])


def table_of(page_text: str) -> str:
    """The result table of a page this script wrote (its last text block)."""
    return re.findall(r"```text\n(.*?)```", page_text, flags=re.S)[-1]


def stale() -> list[str]:
    """README's block, when it is not the table of ``docs/quickstart.md`` (which only a run can
    check: rerun this script after changing the console output)."""
    if not PAGE.is_file():
        return [str(PAGE.relative_to(ROOT))]
    block = readme_block(table_of(PAGE.read_text(encoding="utf-8")))
    return [] if block in README.read_text(encoding="utf-8") else ["README.md (quickstart block)"]


def write_readme(block: str) -> None:
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        sys.exit(f"README.md has no {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    README.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--columns", type=int, default=COLUMNS, help="console width")
    args = parser.parse_args()
    log, table, seconds = capture(args.columns)
    PAGE.write_text(page(log, table, seconds, args.columns), encoding="utf-8")
    write_readme(readme_block(table))
    print(f"wrote {PAGE.relative_to(ROOT)} and README's quickstart block ({seconds:.0f} s run)")


if __name__ == "__main__":
    main()
