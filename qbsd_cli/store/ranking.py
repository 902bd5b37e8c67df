"""Scores to rankings: the helpers exact search and tag ranking share."""

from __future__ import annotations

import numpy as np


def top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest of `scores` (shape (n,)), best first."""
    if count <= 0 or len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    if count >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, count - 1)[:count]
    return part[np.argsort(-scores[part], kind="stable")]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """`matrix` (shape (n, d)) with every row scaled to length 1, so that a product is a cosine."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector has no direction; giving it similarity 0 to everything beats NaN.
    norms[norms == 0] = 1.0
    return matrix / norms
