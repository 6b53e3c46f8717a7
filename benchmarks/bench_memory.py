"""Peak memory of a whole run, summed over all its processes, and its round times.

Runs ``fedrule run SCENARIO`` (the driver, and the Ray and Flower processes it starts) and samples
every process of its tree once a second: the peak of their summed PSS (shared pages split
between the processes that map them, so Ray's shared object store is counted once) and of their
summed RSS (shared pages counted in every process: an upper bound). Then prints the run's phase
times and the median seconds of a training round (its ``metrics.json`` and
``rounds-seed0.csv``). Linux only (reads /proc). Prints figures measured in one run (it is not
a timed test). Usage:
    python benchmarks/bench_memory.py [scenarios/synthetic-100k.yaml] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 2**30


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _tree(root: int) -> list[int]:
    children, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) bytes of one process (0, 0 once it is gone)."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def _name(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words[:4]))[:60]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", nargs="?", default="scenarios/synthetic-100k.yaml")
    parser.add_argument("--set", action="append", default=[], help="key=value, as fedrule run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "fedrule", "run", args.scenario, "-q", "--out", out]
        for item in args.set:
            command += ["--set", item]
        started = time.perf_counter()
        run = subprocess.Popen(command)
        peak_pss = peak_rss = processes = 0
        at_peak: list[tuple[int, str]] = []
        while run.poll() is None:
            pids = _tree(run.pid)
            sizes = [_memory(pid) for pid in pids]
            if sum(p for p, _ in sizes) > peak_pss:
                peak_pss = sum(p for p, _ in sizes)
                at_peak = [(p, _name(pid)) for pid, (p, _) in zip(pids, sizes, strict=True)]
                at_peak.append((int(time.perf_counter() - started), "seconds"))
            peak_rss = max(peak_rss, sum(r for _, r in sizes))
            processes = max(processes, len(pids))
            time.sleep(1.0)
        seconds = time.perf_counter() - started
        if run.returncode:
            sys.exit(f"fedrule run failed (exit {run.returncode})")
        metrics = sorted(Path(out).rglob("metrics.json"))
        phases = json.loads(metrics[0].read_text())["seeds"]["0"] if metrics else {}
        rounds = sorted(Path(out).rglob("rounds-seed0.csv"))
        per_round = []
        if rounds:
            with rounds[0].open() as fh:
                per_round = sorted(float(r["seconds"]) for r in csv.DictReader(fh))
    print(f"{args.scenario} {' '.join(args.set)}")
    print(f"whole run: {seconds:.0f} s, up to {processes} processes")
    print(f"peak memory summed over the processes: PSS {peak_pss / GIB:.2f} GiB, ", end="")
    print(f"RSS {peak_rss / GIB:.2f} GiB (shared pages in every process)")
    if at_peak:
        when = at_peak.pop()[0]
        largest = sorted(at_peak, reverse=True)[:4]
        named = ", ".join(f"{name} {size / GIB:.2f}" for size, name in largest)
        print(f"  at the peak ({when} s into the run), largest PSS in GiB: {named}")
    if phases:
        named = ", ".join(f"{k} {v:.0f} s" for k, v in phases["phase_seconds"].items())
        print(f"seed 0: {phases['seconds']:.0f} s in the engine; phases: {named}")
    if per_round:
        median = per_round[len(per_round) // 2]
        print(f"training round: median {median:.2f} s of {len(per_round)} rounds")


if __name__ == "__main__":
    main()
