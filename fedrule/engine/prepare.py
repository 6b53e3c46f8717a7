"""From a scenario's ``data`` section to a per-user split (the same for every seed of a run)."""

from __future__ import annotations

from collections.abc import Callable

from fedrule.data import load_dataset, split_data
from fedrule.data.preprocess import dedupe, kcore, to_implicit
from fedrule.data.split import SplitData
from fedrule.scenario.schema import DataConfig


def load_interactions(data: DataConfig, seed: int, progress: Callable[[str], None] | None = None):
    """Load the source and turn it into deduplicated implicit feedback (k-core filtered)."""
    inter = _load(data, seed, progress)  # errors name data.* keys or the file itself
    inter = dedupe(to_implicit(inter, data.rating_threshold))
    if data.min_user_interactions or data.min_item_interactions:
        inter = kcore(inter, data.min_user_interactions, data.min_item_interactions)
    return inter


def _load(data: DataConfig, seed: int, progress: Callable[[str], None] | None):
    return load_dataset(
        data.source,
        path=data.path,
        data_dir=data.data_dir,
        csv={k: v for k, v in vars(data.csv).items() if v is not None},
        synthetic={
            "n_users": data.synthetic.users,
            "n_items": data.synthetic.items,
            "interactions_per_user": data.synthetic.interactions_per_user,
            "popularity_exponent": data.synthetic.popularity_exponent,
            "activity_exponent": data.synthetic.activity_exponent,
        },
        seed=seed,
        progress=progress,
    )


def prepare_split(
    data: DataConfig, seed: int, progress: Callable[[str], None] | None = None
) -> SplitData:
    """Load, preprocess and split the data of a scenario.

    ``seed`` (the run's first seed) seeds only a synthetic generator; the split's shuffle (for
    data without timestamps) uses ``data.split_seed``, so every run of the same data evaluates
    on the same test items. Says which split ran through ``progress``.
    """
    inter = load_interactions(data, seed, progress)
    split = split_data(
        inter,
        data.split,
        ratios=tuple(data.ratios),
        seed=data.split_seed,
        min_evaluate=data.min_interactions_to_evaluate,
    )
    if progress is not None:
        progress(split.describe(data.split))
    return split
