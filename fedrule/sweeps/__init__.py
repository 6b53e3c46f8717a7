"""Sweeps: the cross product of scenario settings and seeds as independent, resumable runs."""

from fedrule.sweeps.plan import GridAxis, SweepPlan, SweepRun, parse_grid, parse_seeds
from fedrule.sweeps.runner import SweepOutcome, open_sweep, run_sweep
from fedrule.sweeps.summary import summarize_sweep

__all__ = [
    "GridAxis",
    "SweepOutcome",
    "SweepPlan",
    "SweepRun",
    "open_sweep",
    "parse_grid",
    "parse_seeds",
    "run_sweep",
    "summarize_sweep",
]
