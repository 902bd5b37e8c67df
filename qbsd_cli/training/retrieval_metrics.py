"""Query by example as `qbsd similar` uses it: songs ranked by the cosine of their vectors.

On the artist-grouped folds, each clip of a test fold queries the clips of the other
(training) folds; both the query's vector and the training clips' vectors come from the
model trained without the query's fold (`vectors_per_fold[f]` holds every clip's vector
from fold f's model). Of its `k` nearest training clips, three shares are averaged over
all queries:

- quadrant precision@k: the share in the query's Russell quadrant;
- genre precision@k: the share sharing at least one genre with the query;
- mood Jaccard@k: the mean Jaccard index |A & B| / |A | B| of the query's mood set A and
  each result's mood set B (0 when both are empty).

Ties in cosine are broken by clip index (the lower first), so the figures are the same on
every run.
"""

from __future__ import annotations

import numpy as np

from .metrics import cosine_matrix

#: The measures of `query_by_example`, in the order of the tables.
QBE_KEYS = ("qbe_quadrant_p@10", "qbe_genre_p@10", "qbe_mood_jaccard@10")


def nearest(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """(n_queries, k) indices into `items` of each query's k highest cosines, best first;
    equal cosines in item order (stable sort)."""
    similarity = cosine_matrix(queries, items)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def query_by_example(
    vectors_per_fold: dict[int, np.ndarray] | np.ndarray,
    fold_of: np.ndarray,
    quadrants: np.ndarray,
    genres: np.ndarray,
    moods: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """The three measures (QBE_KEYS, named for k = 10; other k give `@k` names) pooled over
    every clip as a query.

    `vectors_per_fold`: per fold number f, the (n_clips, d) vectors of all clips from the
    model that did not see fold f; or one (n_clips, d) array used for every fold (a method
    without training, such as a fixed embedding). `fold_of` (n_clips,) fold per clip;
    `quadrants` (n_clips,) a class per clip; `genres`, `moods` (n_clips, n_genres) and
    (n_clips, n_moods) 0/1 membership matrices."""
    fold_of = np.asarray(fold_of)
    quadrants = np.asarray(quadrants)
    genres = np.asarray(genres, dtype=bool)
    moods = np.asarray(moods, dtype=bool)
    quadrant_hits, genre_hits, jaccards = [], [], []
    for fold in np.unique(fold_of):
        vectors = vectors_per_fold if isinstance(vectors_per_fold, np.ndarray) else vectors_per_fold[int(fold)]
        test = np.flatnonzero(fold_of == fold)
        train = np.flatnonzero(fold_of != fold)
        found = train[nearest(vectors[test], vectors[train], min(k, len(train)))]  # (n_test, k) clip indices
        # per query, the mean over its list (lists are shorter only when k exceeds a fold's
        # training clips, as in expected_at_random)
        quadrant_hits.append((quadrants[found] == quadrants[test][:, None]).mean(axis=1))
        genre_hits.append((genres[found] & genres[test][:, None, :]).any(axis=2).mean(axis=1))
        shared = (moods[found] & moods[test][:, None, :]).sum(axis=2)
        either = (moods[found] | moods[test][:, None, :]).sum(axis=2)
        jaccards.append(np.divide(shared, either, out=np.zeros(shared.shape), where=either > 0).mean(axis=1))
    suffix = f"@{k}"
    return {
        f"qbe_quadrant_p{suffix}": float(np.concatenate(quadrant_hits).mean()),
        f"qbe_genre_p{suffix}": float(np.concatenate(genre_hits).mean()),
        f"qbe_mood_jaccard{suffix}": float(np.concatenate(jaccards).mean()),
    }


def song_label_sets(tags: list[str], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quadrant per clip (n,), genre matrix (n, n_genres), mood matrix (n, n_moods)) from a
    labelled collection's tag names (`quadrant:q1`..`q4`, `genre:...`, `mood:...`) and its
    0/1 label matrix. Only the vocabulary's tags count (moods4q: moods and genres of at
    least 10 clips)."""
    quadrant_columns = [tags.index(f"quadrant:q{i}") for i in range(1, 5)]
    genre_columns = [i for i, tag in enumerate(tags) if tag.startswith("genre:")]
    mood_columns = [i for i, tag in enumerate(tags) if tag.startswith("mood:")]
    return labels[:, quadrant_columns].argmax(axis=1), labels[:, genre_columns], labels[:, mood_columns]


def standardised_per_fold(features: np.ndarray, fold_of: np.ndarray) -> dict[int, np.ndarray]:
    """Per fold f, every clip's `features` standardised by the mean and standard deviation
    of the clips outside fold f (its training folds); constant columns are left centred."""
    result = {}
    for fold in np.unique(fold_of):
        train = features[fold_of != fold]
        scale = train.std(axis=0)
        result[int(fold)] = (features - train.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    return result


def expected_at_random(fold_of: np.ndarray, quadrants: np.ndarray, genres: np.ndarray, moods: np.ndarray) -> dict:
    """What a random list gives on average, under QBE_KEYS' names: each query's shares over
    all of its training clips (query_by_example with k = every training clip)."""
    result = query_by_example(np.ones((len(fold_of), 1)), fold_of, quadrants, genres, moods, k=len(fold_of))
    return dict(zip(QBE_KEYS, result.values()))
