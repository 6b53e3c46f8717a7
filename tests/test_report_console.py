"""Console output: progress lines in a log file, the tier table and the tier summary."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from fedrule.report.console import ConsoleEvents, tier_table
from fedrule.report.tables import tier_summary


def _log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


@pytest.mark.parametrize("total", [1, 7, 20, 47, 1000])
def test_a_log_file_gets_at_most_about_20_lines_per_phase(total: int) -> None:
    console, buffer = _log_console()
    events = ConsoleEvents(console)
    events.phase("dispatch and test", total)
    for step in range(total):
        events.advance({"loss": 1.0 / (step + 1)})
    events.end_phase()
    lines = buffer.getvalue().splitlines()
    assert 1 <= len(lines) <= 21 and len(lines) <= total
    assert lines[-1].startswith(f"dispatch and test {total}/{total}")
    if total >= 20:
        assert len(lines) >= 15


def test_unknown_totals_thin_out_too() -> None:
    console, buffer = _log_console()
    events = ConsoleEvents(console)
    events.phase("rounds")
    for _ in range(1000):
        events.advance()
    lines = buffer.getvalue().splitlines()
    assert len(lines) <= 10 + math.ceil(math.log2(1000))
    assert lines[0] == "rounds 1  " and lines[-1] == "rounds 512  "


def test_quiet_prints_nothing() -> None:
    console, buffer = _log_console()
    events = ConsoleEvents(console, quiet=True)
    events.phase("x", 5)
    events.advance()
    events.message("hello")
    assert buffer.getvalue() == ""


def _device(tier: str, accepted: bool, evaluated: bool, value: float) -> dict:
    return {
        "tier": tier,
        "budget_bytes": 1000,
        "bytes_received": 900,
        "accepted": accepted,
        "evaluated": evaluated,
        "recall@10": value if evaluated else float("nan"),
        "ndcg@10": value / 2 if evaluated else float("nan"),
    }


def test_tier_table_shows_devices_and_evaluated_devices() -> None:
    rows = [
        _device("watch", True, True, 0.2),
        _device("watch", True, False, 0.0),  # too few interactions: no test item
        _device("watch", False, False, 0.0),  # refused its payload
        _device("tv", True, True, 0.4),
    ]
    summary = tier_summary([rows], ("watch", "tv"), ["recall@10", "ndcg@10"])
    watch = summary[0]
    assert (watch["devices"], watch["evaluated"], watch["refused"]) == (3, 1, 1)
    assert watch["recall@10"] == pytest.approx(0.2)
    assert summary[-1]["tier"] == "all" and summary[-1]["evaluated"] == 2
    legacy = [{k: v for k, v in r.items() if k != "evaluated"} for r in rows]
    assert tier_summary([legacy], ("watch", "tv"), ["recall@10"])[0]["evaluated"] == 1
    console, buffer = _log_console()
    console.print(tier_table(summary, "10"))
    text = buffer.getvalue()
    cells = [
        [c.strip() for c in line.strip("│┃ ").split("│" if "│" in line else "┃")]
        for line in text.splitlines()
        if "│" in line or "┃" in line
    ]
    assert cells[0][:3] == ["tier", "devices", "evaluated"]
    assert cells[1][:3] == ["watch", "3", "1"] and cells[-1][:3] == ["all", "4", "2"]
