"""The audit's scorer: the only privacy code that reads ground truth (the devices' training
items). AUC (ties count one half), precision@k with k the number of true items, and F1 of the
items an attack names."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from fedrule.privacy.attacks import Guess


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
