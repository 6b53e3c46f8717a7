"""Estimator labelling, the performance estimator, and retrain-free search under a budget."""

from fedrule.search.base import SearchResult
from fedrule.search.estimator import PerformanceEstimator, fit_estimator, spearman
from fedrule.search.features import ConfigFeatures, group_popularity_share
from fedrule.search.labels import label_configs
from fedrule.search.sampling import sample_configs
from fedrule.search.searchers import SEARCHERS, search

__all__ = [
    "SEARCHERS",
    "ConfigFeatures",
    "PerformanceEstimator",
    "SearchResult",
    "fit_estimator",
    "group_popularity_share",
    "label_configs",
    "sample_configs",
    "search",
    "spearman",
]
