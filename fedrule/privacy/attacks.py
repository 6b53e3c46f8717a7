"""Attacks an honest-but-curious server mounts on what it received. Attacker code only: every
function here reads a message the server got (and what the server itself computed, such as the
aggregated popularity), never device data; ``fedrule.privacy.scorer`` holds the ground truth.

Each attack returns a ``Guess``: a score per item (higher: more likely one of the devices'
training items) and the set of items it names.

The audit (``fedrule.privacy.audit``) mounts the attacks ``privacy.attacks`` names, each an
``Attack`` registered in ``fedrule.registry.ATTACKS``: fedrule's own at the end of this module,
a package's through an entry point of the group ``fedrule.attacks``. An attack reads either what
a popularity count's reply reveals (``Counted``) or what a training reply reveals (``Upload``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import expit

from fedrule.registry import ATTACKS
from fedrule.scenario.validate import doc


@dataclass(frozen=True, eq=False)
class Guess:
    score: np.ndarray  # per item
    named: np.ndarray  # per item: bool, the items the attack claims


@dataclass(frozen=True, eq=False)
class Counted:
    """What one popularity count's reply reveals: the summed (or one device's masked) counts."""

    counts: np.ndarray
    n_items: int


@dataclass(frozen=True, eq=False)
class Upload:
    """What one training reply reveals: the rows its devices updated, their summed weighted
    updates, the values the server sent for those rows, the popularity it counted, and the
    protocol's ``train.negatives``."""

    rows: np.ndarray
    sum_wdelta: np.ndarray
    sent: np.ndarray
    popularity: np.ndarray
    negatives: int
    n_items: int


@dataclass(frozen=True)
class Attack:
    """A registered attack: what it reads (``count`` replies or training ``upload``s) and
    ``guess(seen, options)``, with ``options`` an instance of its options dataclass (None: it
    takes none)."""

    reads: Literal["count", "upload"]
    guess: Callable[[Any, Any], Guess]
    options: type | None = None


def touched_rows(rows: np.ndarray, n_items: int) -> Guess:
    """Every uploaded row is a guess: positives and sampled negatives alike."""
    named = np.zeros(n_items, dtype=bool)
    named[rows] = True
    return Guess(named.astype(np.float64), named)


def update_norms(rows: np.ndarray, sum_wdelta: np.ndarray, n_items: int) -> Guess:
    """Uploaded rows ranked by the norm of their update (untouched rows last)."""
    norms = np.linalg.norm(sum_wdelta, axis=1)
    score = np.full(n_items, -1.0)
    score[rows] = norms
    named = np.zeros(n_items, dtype=bool)
    named[rows] = norms > np.median(norms) if norms.size else False
    return Guess(score, named)


def singular_vector(
    rows: np.ndarray, sum_wdelta: np.ndarray, popularity: np.ndarray, n_items: int
) -> Guess:
    """Label-free: a device's BPR row updates are about +u (positives) or -u (negatives) for its
    private user vector u, so the rows' projections on their top right singular vector split
    them in two; the half of higher mean popularity (positives are popular, negatives uniform)
    is named positive."""
    score = np.full(n_items, -np.inf)
    named = np.zeros(n_items, dtype=bool)
    if rows.size == 0:
        return Guess(score, named)
    _, _, vt = np.linalg.svd(sum_wdelta.astype(np.float64), full_matrices=False)
    projection = sum_wdelta @ vt[0]
    up, down = projection > 0, projection < 0
    popular_up = popularity[rows[up]].mean() if up.any() else -np.inf
    popular_down = popularity[rows[down]].mean() if down.any() else -np.inf
    if popular_down > popular_up:
        projection = -projection
    score[rows] = projection
    score[np.isinf(score)] = projection.min() - 1.0
    named[rows] = projection > 0
    return Guess(score, named)


def count_membership(counts: np.ndarray) -> Guess:
    """The popularity count reply: an item with a non-zero count is some device's item."""
    return Guess(np.asarray(counts, dtype=np.float64), np.asarray(counts) > 0)


def shadow_replay(
    rows: np.ndarray,
    sum_wdelta: np.ndarray,
    sent: np.ndarray,
    negatives: int,
    n_items: int,
    iterations: int = 10,
) -> Guess:
    """IMIA-style shadow training (after Yuan et al., "Interaction-level Membership Inference
    Attack Against Federated Recommender Systems", WWW 2023), for BPR-MF devices. The server
    replays the device's local training on its own copy: a shadow user vector u and a guessed
    labelling of the uploaded rows give each row the update BPR would make from the table the
    server *sent* (``sent``: those rows of it): a positive i moves by
    ``+eta * negatives * mean_j sigma(-u.(v_i - v_j)) * u`` over the guessed negatives j, a
    negative j by ``-eta * (|P| negatives / |N|) * mean_i sigma(-u.(v_i - v_j)) * u``. It
    alternates between relabelling each row by which replayed update is nearer the uploaded one
    and refitting the step size, from the uploads' top singular direction at both signs and a
    few norms of u, and keeps the replay nearest the uploads. Unlike ``singular_vector`` it needs
    no popularity: with more than one negative per positive, positives are the smaller side of
    the replay that fits (see the comment below), and the replayed magnitudes from the sent
    table separate the rows within it. All-zero rows (dense padding) are untouched and rank
    last. Attacker knowledge: the uploads, the table it sent, and the protocol's
    ``train.negatives``."""
    score = np.full(n_items, -np.inf)
    named = np.zeros(n_items, dtype=bool)
    delta = np.asarray(sum_wdelta, dtype=np.float64)
    moved = np.linalg.norm(delta, axis=1) > 0
    rows, delta, table = np.asarray(rows)[moved], delta[moved], np.asarray(sent, np.float64)[moved]
    if rows.size < 2:
        score[rows] = 0.0
        return Guess(np.where(np.isinf(score), -1.0, score), named)
    _, _, vt = np.linalg.svd(delta, full_matrices=False)
    fits = []  # per sign of u: the replay nearest the uploads over a few norms of u
    for sign in (1.0, -1.0):
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        for norm in (0.25, 1.0, 4.0):
            u = sign * norm * vt[0]
            labels = delta @ u > 0
            for _ in range(iterations):
                margin, total = _replay(delta, table, u, labels, max(negatives, 1))
                relabelled = margin > 0
                if (relabelled == labels).all() or relabelled.all() or not relabelled.any():
                    break
                labels = relabelled
            if best is None or total < best[0]:
                best = (total, margin, labels)
        fits.append(best)
    # BPR's pair updates are symmetric under (u, positives, negatives) -> (-u, negatives,
    # positives); what breaks the tie is the sampling: with more than one negative per positive
    # the positives are the smaller side. With one, the replay's distance decides (a coin flip).
    if negatives > 1:
        best = min(fits, key=lambda fit: (int(fit[2].sum()), fit[0]))
    else:
        best = min(fits, key=lambda fit: fit[0])
    assert best is not None
    _, margin, labels = best
    score[rows] = margin
    score[np.isinf(score)] = margin.min() - 1.0
    named[rows] = labels
    return Guess(score, named)


def _replay(
    delta: np.ndarray, table: np.ndarray, u: np.ndarray, positive: np.ndarray, negatives: int
) -> tuple[np.ndarray, float]:
    """One replay: per row, (distance to the replayed negative update) minus (distance to the
    replayed positive one), and the total distance of the labelling's replay."""
    if positive.all() or not positive.any():
        positive = delta @ u > np.median(delta @ u)  # a labelling needs both sides
    if positive.all() or not positive.any():
        return np.zeros(delta.shape[0]), float((delta**2).sum())
    scores = table @ u
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    # read as positive, a row is paired with the guessed negatives; read as negative, with the
    # guessed positives (each negative is sampled |P| negatives / |N| times on average)
    weight_pos = negatives * expit(scores[neg][None, :] - scores[:, None]).mean(axis=1)
    weight_neg = (negatives * pos.size / neg.size) * expit(
        scores[:, None] - scores[pos][None, :]
    ).mean(axis=1)
    along = delta @ u
    uu = float(u @ u)
    signed = np.where(positive, weight_pos, -weight_neg)
    eta = float((signed * along).sum() / max((signed**2).sum() * uu, 1e-300))
    sq = (delta**2).sum(axis=1)
    to_pos = sq - 2 * eta * weight_pos * along + (eta * weight_pos) ** 2 * uu
    to_neg = sq + 2 * eta * weight_neg * along + (eta * weight_neg) ** 2 * uu
    total = float(np.where(positive, to_pos, to_neg).sum())
    return to_neg - to_pos, total


@dataclass(frozen=True)
class ReplayOptions:
    iterations: int = doc("(int) relabelling rounds of each replay", 10)


@dataclass(frozen=True, eq=False)
class RankGuess:
    """Per device: the 0-based rank interval [low, high] of its test item that its test report
    pins down, and its bucket (1 head, 0 tail, -1 not revealed)."""

    low: np.ndarray
    high: np.ndarray
    bucket: np.ndarray


def test_rank(keys: Sequence[str], metrics: np.ndarray, n_items: int) -> RankGuess:
    """Invert a device's test report (``TestReply.metrics``, one row per device). Hit@K says
    whether the test item ranks below K; with one test item (leave-one-out) NDCG@K =
    1 / log2(rank + 2) gives the rank itself whenever it is below K. The head/tail metrics are
    NaN for the bucket the item is not in."""
    metrics = np.asarray(metrics, dtype=np.float64).reshape(-1, len(keys))
    column = {key: i for i, key in enumerate(keys)}
    ks = sorted(int(k.split("@")[1]) for k in keys if k.startswith("hit@"))
    n = metrics.shape[0]
    low = np.zeros(n, dtype=np.int64)
    high = np.full(n, n_items - 1, dtype=np.int64)
    for k in ks:
        hit = metrics[:, column[f"hit@{k}"]]
        low = np.where(hit == 0, np.maximum(low, k), low)
        high = np.where(hit > 0, np.minimum(high, k - 1), high)
        ndcg = metrics[:, column[f"ndcg@{k}"]] if f"ndcg@{k}" in column else np.full(n, np.nan)
        single = (metrics[:, column[f"recall@{k}"]] == 1) if f"recall@{k}" in column else hit > 0
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            rank = np.nan_to_num(np.exp2(1.0 / ndcg) - 2.0, nan=-1.0, posinf=-1.0)
        exact = single & (ndcg > 0) & (rank >= 0) & (np.abs(rank - np.round(rank)) < 1e-6)
        low = np.where(exact, np.round(rank).astype(np.int64), low)
        high = np.where(exact, np.round(rank).astype(np.int64), high)
    bucket = np.full(n, -1, dtype=np.int64)
    if ks and f"head/hit@{ks[0]}" in column:
        head = ~np.isnan(metrics[:, column[f"head/hit@{ks[0]}"]])
        tail = ~np.isnan(metrics[:, column[f"tail/hit@{ks[0]}"]])
        bucket = np.where(head & ~tail, 1, np.where(tail & ~head, 0, -1))
    evaluated = ~np.isnan(metrics).all(axis=1) if metrics.size else np.zeros(n, dtype=bool)
    low, high = np.where(evaluated, low, 0), np.where(evaluated, high, n_items - 1)
    return RankGuess(low, np.maximum(high, low), bucket)


for _name, _attack in (
    ("count", Attack("count", lambda seen, _: count_membership(seen.counts))),
    ("touched", Attack("upload", lambda seen, _: touched_rows(seen.rows, seen.n_items))),
    (
        "norm",
        Attack("upload", lambda seen, _: update_norms(seen.rows, seen.sum_wdelta, seen.n_items)),
    ),
    (
        "svd",
        Attack(
            "upload",
            lambda seen, _: singular_vector(
                seen.rows, seen.sum_wdelta, seen.popularity, seen.n_items
            ),
        ),
    ),
    (
        "imia",
        Attack(
            "upload",
            lambda seen, options: shadow_replay(
                seen.rows,
                seen.sum_wdelta,
                seen.sent,
                seen.negatives,
                seen.n_items,
                options.iterations,
            ),
            ReplayOptions,
        ),
    ),
):
    ATTACKS.register(_name, _attack)
