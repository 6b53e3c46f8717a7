"""Seconds for one search under a budget, per searcher, on an ML-1M-sized layout.

The estimator is an MLP of the default size fitted to a smooth synthetic label (search time does
not depend on what the estimator learned). Usage: python benchmarks/bench_search.py
"""

from __future__ import annotations

import argparse

import numpy as np

from fedrule.model.elastic import ElasticLayout, make_groups
from fedrule.scenario import scenario_from_dict
from fedrule.search import customize
from fedrule.search.estimator import fit_estimator
from fedrule.search.features import group_popularity_share
from fedrule.search.sampling import sample_configs
from fedrule.units import parse_budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    popularity = np.sort(rng.zipf(1.5, size=args.items))[::-1].astype(np.float64)
    cfg = scenario_from_dict({})
    for groups in args.groups:
        layout = ElasticLayout(64, 32, make_groups(popularity, groups, "mass"), 1)
        share = group_popularity_share(layout, popularity)
        configs = sample_configs(layout, 300, rng)
        kept = configs.mean(axis=2)
        labels = np.log1p(5 * (kept * share).sum(axis=1)) + 0.01 * rng.standard_normal(300)
        estimator, _ = fit_estimator(layout, configs, labels, share, epochs=50, seed=0)
        print(f"n={args.items} items, G={groups}, B=32:")
        for searcher in ("evolution", "greedy", "uniform", "random"):
            times = []
            for budget in ("1/16", "1/8", "1/4", "1/2"):
                budget_bytes = parse_budget(budget).resolve(layout.full_table_bytes)
                result = customize.search(layout, budget_bytes, estimator, cfg.search, 0, searcher)
                times.append(result.seconds)
            print(
                f"  {searcher:9s}  mean {np.mean(times) * 1000:7.1f} ms   "
                f"max {np.max(times) * 1000:7.1f} ms per budget"
            )


if __name__ == "__main__":
    main()
