"""The paper's evaluation measures, on (n_songs, n_tags) arrays.

`labels` are the human annotations in {0, 1}; `scores` are song vectors
(probabilities, any monotone score works for the ranking measures).
"""

from __future__ import annotations

import numpy as np


def annotation_scores(labels: np.ndarray, scores: np.ndarray, top: int = 10) -> dict:
    """Annotate each song with its `top` highest-scoring tags; per-tag precision,
    recall and F averaged over tags.

    A tag that is never predicted has an undefined precision; it counts as 0
    (as in Turnbull et al. and the paper's CAL500 tables), and how many such
    tags there were is reported as `never_predicted`. Tags without any positive
    song are left out of the averages.
    """
    top = min(top, scores.shape[1])
    predicted = np.zeros_like(labels, dtype=bool)
    best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    np.put_along_axis(predicted, best, True, axis=1)
    truth = labels.astype(bool)
    has_positive = truth.sum(axis=0) > 0
    true_positive = (predicted & truth).sum(axis=0).astype(np.float64)
    n_predicted = predicted.sum(axis=0).astype(np.float64)
    n_true = truth.sum(axis=0).astype(np.float64)
    precision = np.divide(true_positive, n_predicted, out=np.zeros_like(true_positive), where=n_predicted > 0)
    recall = np.divide(true_positive, n_true, out=np.zeros_like(true_positive), where=n_true > 0)
    f_score = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=(precision + recall) > 0
    )
    return {
        "precision": float(precision[has_positive].mean()),
        "recall": float(recall[has_positive].mean()),
        "f": float(f_score[has_positive].mean()),
        "never_predicted": int(((n_predicted == 0) & has_positive).sum()),
        "tags": int(has_positive.sum()),
    }


def per_tag_retrieval(labels: np.ndarray, scores: np.ndarray, min_positives: int = 5):
    """Per-tag AROC and average precision (sklearn), for tags with >= min_positives
    positives and at least one negative. Returns (tag indices, aroc, ap)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    positives = labels.sum(axis=0)
    usable = np.flatnonzero((positives >= min_positives) & (positives < labels.shape[0]))
    aroc = np.array([roc_auc_score(labels[:, t], scores[:, t]) for t in usable])
    ap = np.array([average_precision_score(labels[:, t], scores[:, t]) for t in usable])
    return usable, aroc, ap


def retrieval_scores(labels: np.ndarray, scores: np.ndarray, min_positives: int = 5) -> dict:
    """Mean per-tag AROC and MAP over tags with at least `min_positives` positives."""
    usable, aroc, ap = per_tag_retrieval(labels, scores, min_positives)
    if len(usable) == 0:
        return {"aroc": float("nan"), "map": float("nan"), "tags": 0}
    return {"aroc": float(aroc.mean()), "map": float(ap.mean()), "tags": int(len(usable))}


def cosine_matrix(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query row with every item row."""

    def unit(rows):
        rows = np.asarray(rows, dtype=np.float64)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    return unit(queries) @ unit(items).T


def own_item_ranks(queries: np.ndarray, items: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per query row, the rank (1 = first) by cosine of its own item, `items[own[i]]`, among
    all item rows; ties are counted in the own item's favour, so an excerpt whose vector
    equals its clip's is found first. Shapes: queries (q, d), items (n, d), own (q,)."""
    similarity = cosine_matrix(queries, items)
    own_similarity = similarity[np.arange(len(similarity)), own]
    return (similarity > own_similarity[:, None]).sum(axis=1) + 1


def hit_at_k(labels: np.ndarray, scores: np.ndarray, ks=(1, 5, 10, 20)) -> dict:
    """The paper's query by example: each song's predicted vector queries the
    human-annotated vectors of all songs by cosine; a hit at k when the song
    itself ranks in the top k. Ties are broken against the song (pessimistic)."""
    similarity = cosine_matrix(scores, labels)
    own = np.diag(similarity)
    rank = (similarity > own[:, None]).sum(axis=1) + (similarity == own[:, None]).sum(axis=1)
    return {int(k): float((rank <= k).mean()) for k in ks}, rank


def quadrant_scores(labels: np.ndarray, scores: np.ndarray, quadrant_columns: list[int]) -> dict:
    """Accuracy and macro-F1 of the argmax over the four quadrant tags."""
    from sklearn.metrics import accuracy_score, f1_score

    truth = labels[:, quadrant_columns].argmax(axis=1)
    predicted = scores[:, quadrant_columns].argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
    }


def paired_bootstrap(
    labels: np.ndarray,
    scores: np.ndarray,
    reference: np.ndarray,
    rounds: int = 200,
    seed: int = 0,
    min_positives: int = 5,
) -> dict:
    """How sure is `scores`' lead over `reference`? Songs are resampled with replacement
    `rounds` times; both methods are scored on the same resample, so the spread is that
    of the difference. Returns the mean differences of AROC and MAP, their 2.5 and 97.5
    percentiles and the share of resamples in which `scores` is ahead."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(rounds):
        sample = rng.integers(0, len(labels), len(labels))
        ours = retrieval_scores(labels[sample], scores[sample], min_positives)
        theirs = retrieval_scores(labels[sample], reference[sample], min_positives)
        differences.append((ours["aroc"] - theirs["aroc"], ours["map"] - theirs["map"]))
    differences = np.array(differences)
    result = {"rounds": rounds}
    for column, name in enumerate(("aroc", "map")):
        values = differences[:, column]
        result[f"{name}_difference"] = float(values.mean())
        result[f"{name}_low"], result[f"{name}_high"] = (float(v) for v in np.percentile(values, [2.5, 97.5]))
        result[f"{name}_ahead"] = float((values > 0).mean())
    return result
