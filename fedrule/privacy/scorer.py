"""The audit's scorer: the only privacy code that reads ground truth (the devices' training
items). AUC (ties count one half), precision@k with k the number of true items, and F1 of the
items an attack names."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from fedrule.privacy.attacks import Guess, RankGuess


def score_guess(guess: Guess, truth: np.ndarray) -> dict[str, float]:
    """``truth``: the true items (indices). NaN where a metric is undefined (no true item, or
    every item true)."""
    n = guess.score.size
    positive = np.zeros(n, dtype=bool)
    positive[np.asarray(truth, dtype=np.int64)] = True
    k = int(positive.sum())
    if k == 0 or k == n:
        return {"auc": float("nan"), "prec": float("nan"), "f1": float("nan")}
    ranks = rankdata(guess.score)
    auc = (ranks[positive].sum() - k * (k + 1) / 2) / (k * (n - k))
    top = np.argsort(-guess.score, kind="stable")[:k]
    precision = positive[top].mean()
    hits = int((guess.named & positive).sum())
    named = int(guess.named.sum())
    f1 = 2 * hits / (named + k) if named + k else 0.0
    return {"auc": float(auc), "prec": float(precision), "f1": float(f1)}


def score_ranks(guess: RankGuess, evaluated: np.ndarray, n_items: int) -> dict[str, float]:
    """The test-rank attack over the evaluated devices: the share whose rank it pins exactly,
    the mean information about the rank (log2 of the n_items candidate ranks over the width of
    the interval it pins), and the share whose test item it puts in the head or the tail. (The
    interval always holds the true rank: the metrics are functions of it, see
    ``tests/test_privacy_audit.py``.)"""
    mask = np.asarray(evaluated, dtype=bool)
    if not mask.any():
        return {}
    width = (guess.high - guess.low + 1)[mask].astype(np.float64)
    return {
        "test_rank_exact": float((width == 1).mean()),
        "test_rank_bits": float(np.mean(np.log2(n_items / width))),
        "test_bucket": float((guess.bucket[mask] >= 0).mean()),
    }
