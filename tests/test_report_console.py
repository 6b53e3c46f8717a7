"""Console output: progress lines in a log file, the tier table (narrow terminals and pipes
included), its notes, and the tier summary."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from fedrule.report.console import ConsoleEvents, tier_notes, tier_table
from fedrule.report.tables import dispatch_notes, tier_summary, without_duplicate_recall


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
    console.print(tier_table(summary, "ndcg@10"))
    text = buffer.getvalue()
    cells = [
        [c.strip() for c in line.strip("│┃ ").split("│" if "│" in line else "┃")]
        for line in text.splitlines()
        if "│" in line or "┃" in line
    ]
    header = cells[0]
    assert header[0] == "tier" and {"devices", "evaluated"} <= set(header)
    columns = [header.index(name) for name in ("tier", "devices", "evaluated")]
    assert [cells[1][i] for i in columns] == ["watch", "3", "1"]
    assert [cells[-1][i] for i in columns] == ["all", "4", "2"]


def _fleet_rows(seeds: int = 3) -> list[dict]:
    """tiers.csv rows of a four-tier run with every column the console shows."""
    rows = []
    for i, (tier, budget) in enumerate(
        [("watch", 26_912), ("phone", 65_536), ("tablet", 215_296), ("tv", 430_592)]
    ):
        rows.append(
            {
                "tier": tier,
                "devices": 1510 + i,
                "evaluated": 1509 + i,
                "budget_bytes": budget,
                "bytes_received_mean": budget * 0.97,
                "refused": 0,
                "seeds": seeds,
                "ndcg@20": 0.0805 - 0.004 * i,
                "ndcg@20_std": 0.0012,
                "hit@20": 0.181 - 0.01 * i,
                "hit@20_std": 0.0021,
                "predicted": 0.0449 + 0.008 * i,
                "ndcg@20_every_device": 0.0631 + 0.0061 * i,
                "ndcg@20_every_device_std": 0.0009,
            }
        )
    total = {**rows[0], "tier": "all", "devices": 6046, "budget_bytes": "26912..430592"}
    return [*rows, {k: v for k, v in total.items() if "every_device" not in k}]


def _render(console: Console, tiers: list[dict]) -> str:
    console.print(tier_table(tiers, "ndcg@20", width=console.width))
    return console.file.getvalue()


@pytest.mark.parametrize(
    "console",
    [
        pytest.param(lambda: Console(file=io.StringIO(), width=80), id="80-columns"),
        pytest.param(lambda: Console(file=io.StringIO(), force_terminal=False), id="piped"),
        pytest.param(lambda: Console(file=io.StringIO(), width=60), id="60-columns"),
    ],
)
def test_the_headline_metric_stays_whole_when_the_table_is_narrow(console, monkeypatch):
    """At 80 columns, piped into a file (rich's 80) or narrower, secondary columns are left out
    (and named) until the table fits: the headline figures are never cut to ``0.08…``."""
    monkeypatch.delenv("COLUMNS", raising=False)
    console = console()
    tiers = _fleet_rows()
    text = _render(console, tiers)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= console.width <= 80
    for row in tiers[:-1]:
        assert f"{row['ndcg@20_every_device']:.4f} ± 0.0009" in text
    assert "every device" in text and "left out to fit:" in text
    assert "refused" in text.split("left out to fit:")[1]  # the first to go


def test_a_wide_console_shows_every_column_and_leaves_nothing_out():
    console = Console(file=io.StringIO(), width=200)
    text = _render(console, _fleet_rows())
    header = " ".join(text.splitlines()[1:4])
    for name in ("every device", "own devices", "hit@20", "predicted", "devices", "refused"):
        assert name in header
    assert "left out" not in text and "…" not in text


def test_the_notes_say_that_tiers_hold_different_users_and_what_predicted_is():
    tiers = _fleet_rows(seeds=1)
    tiers[3]["note"] = "52.5 KiB of its 420.5 KiB budget, no more than phone's configuration"
    notes = tier_notes(tiers, "ndcg@20")
    assert notes[0].startswith("every device: each tier's configuration tested on all 6046")
    assert "different users" in notes[1]
    assert notes[2].startswith("predicted (valid): the estimator's prediction") and (
        "validation ndcg@20" in notes[2]
    )
    assert notes[3] == "tv: 52.5 KiB of its 420.5 KiB budget, no more than phone's configuration"
    without = [{k: v for k, v in r.items() if "every_device" not in k} for r in tiers]
    assert "eval.every_device: true" in tier_notes(without, "ndcg@20")[0]
    assert "0.5·ndcg@20 + 0.5·tail/ndcg@20" in tier_notes(tiers, "ndcg@20", 0.5)[2]


def _searches(*sizes: int) -> dict[str, dict]:
    return {str(b): {"bytes": s} for b, s in zip((1000, 4000, 16000), sizes, strict=True)}


def _budget_rows() -> list[dict]:
    rows = [{"tier": t, "budget_bytes": b} for t, b in (("watch", 1000), ("phone", 4000))]
    return [*rows, {"tier": "tv", "budget_bytes": 16000}, {"tier": "all", "budget_bytes": "x"}]


def test_a_budget_whose_configuration_is_no_larger_than_a_smaller_ones_gets_a_note():
    rows = _budget_rows()
    dispatch_notes(rows, [_searches(990, 3900, 3900)], verified=True)
    assert "note" not in rows[0] and "note" not in rows[1] and "note" not in rows[3]
    assert rows[2]["note"] == (
        "3.8 KiB of its 15.6 KiB budget, no more than phone's configuration: verification "
        "(search.verify) measured it best on validation among the configurations that fit"
    )


def test_a_budget_far_from_full_gets_a_note_naming_the_seeds_and_the_searcher():
    rows = _budget_rows()
    seeds = [_searches(990, 1900, 15000), _searches(990, 3900, 15000)]  # 1900 < 4000 / 2
    dispatch_notes(rows, seeds, verified=False)
    assert rows[1]["note"] == (
        "1.9 KiB of its 3.9 KiB budget in 1 seed(s): the search chose it by the estimator's "
        "prediction"
    )
    assert "note" not in rows[0] and "note" not in rows[2]


def test_recall_leaves_only_where_hit_says_the_same():
    keys = ["recall@10", "ndcg@10", "hit@10", "tail/recall@10", "tail/hit@10", "recall@20"]
    assert without_duplicate_recall(keys) == ["ndcg@10", "hit@10", "tail/hit@10", "recall@20"]
    kept = without_duplicate_recall(keys, keep=["recall@10", "tail/recall@10"])
    assert kept == keys
