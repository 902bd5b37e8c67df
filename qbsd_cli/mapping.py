"""The library as a map (`qbsd map`): where each song lies on two planes, in numpy.

- The **mood plane**: Russell's valence/arousal plane from the four quadrant tags
  (`quadrant:q1` happy/excited, `q2` angry/tense, `q3` sad/depressed, `q4` calm/relaxed):
  valence = (Q1 + Q4) - (Q2 + Q3), arousal = (Q1 + Q2) - (Q3 + Q4), each in -2..2.
- The **map of the whole vector**: every tag score at once, brought to 2D. Up to
  NEIGHBOUR_LIMIT songs a small t-SNE (exact, numpy, fixed seed, started from the PCA)
  keeps neighbours together; beyond it, the first two principal components (PCA).

Both are deterministic: one index always gives one map. Pure numpy over the vectors the
index hands over (a ranking.SongSource's catalogue); it writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ranking import SongSource
from .songinfo import SongInfo

#: The four quadrant tags of Russell's plane, Q1..Q4, and the moods each stands for.
QUADRANT_TAGS = ("quadrant:q1", "quadrant:q2", "quadrant:q3", "quadrant:q4")
QUADRANT_MOODS = ("happy · excited", "angry · tense", "sad · depressed", "calm · relaxed")
#: Songs up to which the whole-vector map is a t-SNE (n² memory and time: about 3 s at 800
#: songs on one core, 40 s at 2,000); PCA beyond.
NEIGHBOUR_LIMIT = 1000
#: t-SNE's perplexity (the effective number of neighbours each song keeps) and rounds.
PERPLEXITY = 30.0
ROUNDS = 300
SEED = 0


@dataclass(frozen=True)
class MapLayout:
    """Every song of the index (paths sorted by their bytes), its tag scores (n, n_tags),
    names, and its place on each view (n, 2): `mood` (valence, arousal; None when the
    model has no quadrant tags) and `vector` (made by `method`: "t-SNE" or "PCA")."""

    paths: list[str]
    infos: list[SongInfo | None]
    tags: list[str]
    scores: np.ndarray
    mood: np.ndarray | None
    vector: np.ndarray
    method: str


def mood_plane(scores: np.ndarray, tags: list[str]) -> np.ndarray | None:
    """(valence, arousal) per song from the quadrant tags' scores; None without them."""
    if not set(QUADRANT_TAGS) <= set(tags):
        return None
    q1, q2, q3, q4 = (scores[:, tags.index(tag)].astype(np.float64) for tag in QUADRANT_TAGS)
    return np.stack([(q1 + q4) - (q2 + q3), (q1 + q2) - (q3 + q4)], axis=1)


def pca(scores: np.ndarray, dimensions: int = 2) -> np.ndarray:
    """The rows projected on their first `dimensions` principal components (each axis'
    sign fixed so that its largest loading is positive: deterministic)."""
    centred = scores.astype(np.float64) - scores.mean(axis=0)
    covariance = centred.T @ centred / max(1, len(centred) - 1)
    values, vectors = np.linalg.eigh(covariance)
    axes = vectors[:, np.argsort(values)[::-1][:dimensions]]
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)
    projected = centred @ axes
    if projected.shape[1] < dimensions:  # fewer tags than dimensions
        projected = np.pad(projected, ((0, 0), (0, dimensions - projected.shape[1])))
    return projected


def _affinities(points: np.ndarray, perplexity: float) -> np.ndarray:
    """t-SNE's symmetric input affinities P (n, n): Gaussian neighbourhoods, each song's
    width found by bisection so that its entropy matches the perplexity."""
    squared = np.sum(points**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0.0)
    n = len(points)
    target = np.log(min(perplexity, max(1.0, (n - 1) / 3)))
    low, high = np.full(n, 1e-20), np.full(n, 1e20)
    beta = np.ones(n)
    for _ in range(60):
        weights = np.exp(-distances * beta[:, None])
        np.fill_diagonal(weights, 0.0)
        total = np.maximum(weights.sum(axis=1), 1e-300)
        entropy = np.log(total) + beta * (distances * weights).sum(axis=1) / total
        too_flat = entropy > target  # too many neighbours: narrow (raise beta)
        low = np.where(too_flat, beta, low)
        high = np.where(too_flat, high, beta)
        beta = np.where(high < 1e20, (low + high) / 2, beta * 2)
    conditional = weights / total[:, None]
    joint = (conditional + conditional.T) / (2 * n)
    return np.maximum(joint, 1e-12)


def tsne(scores: np.ndarray, rounds: int = ROUNDS, perplexity: float = PERPLEXITY) -> np.ndarray:
    """An exact t-SNE (n² memory: for a few thousand songs) of the rows, started from their
    PCA (so deterministic), with early exaggeration and momentum."""
    n = len(scores)
    if n < 4:
        return pca(scores)
    reduced = pca(scores, min(50, scores.shape[1]))
    affinities = _affinities(reduced, perplexity)
    start = pca(scores)
    spread = start.std(axis=0)
    points = start / np.where(spread > 0, spread, 1.0) * 1e-2
    step = np.zeros_like(points)
    gains = np.ones_like(points)
    affinities = affinities.astype(np.float32)
    for round_number in range(rounds):
        exaggeration = 12.0 if round_number < 100 else 1.0
        momentum = 0.5 if round_number < 100 else 0.8
        flat = points.astype(np.float32)
        squared = np.sum(flat**2, axis=1)
        kernel = squared[:, None] + squared[None, :]
        kernel -= 2 * flat @ flat.T
        np.maximum(kernel, 0.0, out=kernel)
        kernel += 1.0
        np.reciprocal(kernel, out=kernel)
        np.fill_diagonal(kernel, 0.0)
        # forces = (exaggeration P - Q) * kernel, with Q = max(kernel / sum, 1e-12)
        similarity = np.maximum(kernel / kernel.sum(dtype=np.float64), np.float32(1e-12))
        forces = exaggeration * affinities - similarity
        forces *= kernel
        gradient = 4 * (forces.sum(axis=1)[:, None] * flat - forces @ flat).astype(np.float64)
        same = np.sign(gradient) == np.sign(step)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01)
        step = momentum * step - 200.0 * gains * gradient
        points = points + step
        points = points - points.mean(axis=0)
    return points


def layout(source: SongSource) -> MapLayout:
    """Every song of `source` placed on the mood plane and on the whole-vector map."""
    paths, matrix, _units, infos = source.catalogue()
    tags = list(source.tags or [])
    scores = np.asarray(matrix, dtype=np.float32)
    if len(paths) <= NEIGHBOUR_LIMIT:
        vector, method = tsne(scores), "t-SNE"
    else:
        vector, method = pca(scores), "PCA"
    return MapLayout(list(paths), list(infos), tags, scores, mood_plane(scores, tags), vector, method)
