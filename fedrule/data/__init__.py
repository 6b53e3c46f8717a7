"""The data layer: load interaction logs, filter them, and split them per user."""

from fedrule.data.fetch import REMOTES, Remote, fetch_remote, resolve_data_dir
from fedrule.data.interactions import Interactions
from fedrule.data.preprocess import dedupe, kcore, to_implicit
from fedrule.data.sources import DATASETS, load_dataset, load_source
from fedrule.data.split import SplitData, UserItems, split_data
from fedrule.data.synthetic import generate_synthetic

__all__ = [
    "DATASETS",
    "REMOTES",
    "Interactions",
    "Remote",
    "SplitData",
    "UserItems",
    "dedupe",
    "fetch_remote",
    "generate_synthetic",
    "kcore",
    "load_dataset",
    "load_source",
    "resolve_data_dir",
    "split_data",
    "to_implicit",
]
