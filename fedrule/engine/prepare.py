"""From a scenario's ``data`` section to a per-user split (the same for every seed of a run)."""

from __future__ import annotations

from collections.abc import Callable

from fedrule.data import load_dataset, split_data
from fedrule.data.preprocess import dedupe, kcore, to_implicit
from fedrule.data.split import SplitData
from fedrule.errors import DataError
from fedrule.scenario.schema import DataConfig


def load_interactions(data: DataConfig, seed: int, progress: Callable[[str], None] | None = None):
    """Load the source and turn it into deduplicated implicit feedback (k-core filtered)."""
    try:
        inter = _load(data, seed, progress)
    except DataError as err:  # name scenario keys by their full dotted path
        if err.path and "/" not in err.path and not err.path.startswith("data."):
            raise DataError(err.message, path=f"data.{err.path}", hint=err.hint) from None
        raise
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
    """Load, preprocess and split the data of a scenario."""
    inter = load_interactions(data, seed, progress)
    return split_data(inter, data.split, ratios=tuple(data.ratios), seed=seed)
