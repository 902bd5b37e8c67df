"""Playlists by cluster: the whole library grouped into N sets of songs that sound alike,
each named by the tags that mark it (`qbsd cluster --count N`).

Spherical k-means on the songs' unit vectors (cosine, as `similar` ranks), numpy only
and deterministic: k-means++ seeding from a fixed seed, then at most MAX_ROUNDS rounds of
assignment (ties to the lower cluster) and mean directions, until no song moves; the same
index always gives the same clusters. Then, so that every cluster is usable as a
playlist: a cluster smaller than `min_size` is dissolved and its songs join their nearest
other cluster (smallest first, until none is too small or one is left); a playlist lists
a cluster's songs by cosine to its centre (ties by path), at most `per_artist` of one
artist and at most `max_size` songs (the most central; the others stay in the cluster's
size). A cluster is named by its defining tags: those whose mean score in the cluster
stands highest above the library's, in the library's standard deviations (`lift`).

Pure numpy over the vectors the index hands over (a ranking.SongSource's catalogue).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .ranking import Selection, SongSource
from .songinfo import SongInfo

#: Rounds of k-means at most; on tag vectors it settles in far fewer.
MAX_ROUNDS = 100
#: The seed of the k-means++ seeding: fixed, so that one index always gives one answer.
SEED = 0
#: Tags that name a cluster (its defining tags).
NAME_TAGS = 3
#: Tags `--explain` gives per cluster.
EXPLAIN_TAGS = 8
#: Rows scored at a time, so that memory stays at one block of cosines.
BLOCK = 65536


@dataclass(frozen=True)
class ClusterRules:
    """`count` clusters; clusters under `min_size` songs dissolved into their neighbours;
    playlists of at most `max_size` songs (0: all) and `per_artist` songs of one artist (0:
    no cap)."""

    count: int
    min_size: int = 1
    max_size: int = 0
    per_artist: int = 0


@dataclass(frozen=True)
class TagLift:
    """A tag that marks a cluster: its mean score in the cluster and in the library (0..1)
    and how far the first stands above the second, in the library's standard deviations."""

    tag: str
    cluster: float
    library: float
    lift: float


@dataclass(frozen=True)
class Cluster:
    """One cluster: its number (1 = the largest), name (`calm · piano · classical`), size
    (songs in it), defining tags (most marking first) and its playlist: (path, cosine to
    the centre, SongInfo) per song, most central first."""

    number: int
    name: str
    size: int
    tags: tuple[TagLift, ...]
    songs: tuple[tuple[str, float, SongInfo | None], ...]


def _nearest(units: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cluster index, cosine) of each row's nearest centre, ties to the lower index."""
    labels = np.empty(len(units), dtype=np.int64)
    best = np.empty(len(units), dtype=np.float32)
    for start in range(0, len(units), BLOCK):
        cosines = units[start : start + BLOCK] @ centres.T
        labels[start : start + BLOCK] = np.argmax(cosines, axis=1)
        best[start : start + BLOCK] = cosines[np.arange(len(cosines)), labels[start : start + BLOCK]]
    return labels, best


def _seeded(units: np.ndarray, count: int) -> np.ndarray:
    """k-means++ seeding on cosine distance (1 - cos), from the fixed SEED."""
    rng = np.random.default_rng(SEED)
    chosen = [int(rng.integers(len(units)))]
    distance = 1.0 - units @ units[chosen[0]]
    for _ in range(1, count):
        weights = np.clip(distance, 0.0, None).astype(np.float64)
        total = weights.sum()
        if total <= 0:  # every song is on a chosen direction already: take the next unchosen
            chosen.append(next(i for i in range(len(units)) if i not in chosen))
        else:
            chosen.append(int(rng.choice(len(units), p=weights / total)))
        distance = np.minimum(distance, 1.0 - units @ units[chosen[-1]])
    return units[chosen].copy()


def _directions(units: np.ndarray, labels: np.ndarray, count: int, previous: np.ndarray) -> np.ndarray:
    """Each cluster's mean direction (unit length); an emptied cluster keeps its last one."""
    sums = np.zeros((count, units.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, units)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.where(norms > 0, sums / np.where(norms > 0, norms, 1.0), previous).astype(np.float32)


def kmeans(units: np.ndarray, count: int) -> np.ndarray:
    """Cluster labels (n,) in 0..count-1 of unit rows (n, d) by spherical k-means."""
    centres = _seeded(units, count)
    labels = _nearest(units, centres)[0]
    for _ in range(MAX_ROUNDS):
        centres = _directions(units, labels, count, centres)
        moved, _cosines = _nearest(units, centres)
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


def _dissolve_small(units: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Labels with every cluster under `min_size` songs dissolved into the others, smallest
    first (ties to the lower label), until none is too small or one is left; relabelled
    0..k-1."""
    labels = labels.copy()
    while True:
        present, sizes = np.unique(labels, return_counts=True)
        if len(present) <= 1 or sizes.min() >= min_size:
            break
        small = present[np.argmin(sizes)]
        others = present[present != small]
        centres = _directions(units, labels, int(labels.max()) + 1, np.zeros((int(labels.max()) + 1, units.shape[1])))
        members = np.nonzero(labels == small)[0]
        nearest, _ = _nearest(units[members], centres[others])
        labels[members] = others[nearest]
    _, relabelled = np.unique(labels, return_inverse=True)
    return relabelled


def _short_name(tag: str) -> str:
    return tag.split(":", 1)[-1]


def cluster_library(source: SongSource, rules: ClusterRules) -> list[Cluster]:
    """The clusters of every song of the index `source` (see the module's docstring),
    largest first (ties by name). Raises UsageError for a count below 1 or above the songs
    in the index, or a negative cap."""
    paths, matrix, units, infos = source.catalogue()
    if rules.count < 1 or rules.count > len(paths):
        raise UsageError(f"--count {rules.count}: give 1 to {len(paths)} clusters (the songs in the index)")
    if rules.min_size < 1 or rules.max_size < 0 or rules.per_artist < 0:
        raise UsageError("--min-size takes at least 1, --max-size and --per-artist at least 0 (0: no cap)")
    tags = source.tags or []
    labels = _dissolve_small(units, kmeans(units, rules.count), rules.min_size)
    k = int(labels.max()) + 1
    centres = _directions(units, labels, k, np.zeros((k, units.shape[1]), dtype=np.float32))
    cosines = np.einsum("ij,ij->i", units, centres[labels])
    library_mean = matrix.mean(axis=0)
    spread = matrix.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    clusters = []
    for label in range(k):
        members = np.nonzero(labels == label)[0]
        mean = matrix[members].mean(axis=0)
        lift = (mean - library_mean) / spread
        order = np.argsort(-lift, kind="stable")[:EXPLAIN_TAGS]
        marks = tuple(TagLift(tags[i], float(mean[i]), float(library_mean[i]), float(lift[i])) for i in order)
        name = " · ".join(_short_name(mark.tag) for mark in marks[:NAME_TAGS])
        ranked = sorted(members.tolist(), key=lambda i: (-float(cosines[i]), os.fsencode(paths[i])))
        selection = Selection(threshold=2.0, per_artist=rules.per_artist, keep_duplicates=True)
        playlist: list[tuple[str, float, SongInfo | None]] = []
        for i in ranked:
            if rules.max_size and len(playlist) >= rules.max_size:
                break
            if selection.admits(paths[i], units[i], infos[i]):
                selection.add(paths[i], units[i], infos[i])
                playlist.append((paths[i], float(cosines[i]), infos[i]))
        clusters.append(Cluster(0, name, len(members), marks, tuple(playlist)))
    clusters.sort(key=lambda cluster: (-cluster.size, cluster.name))
    return [
        Cluster(number, cluster.name, cluster.size, cluster.tags, cluster.songs)
        for number, cluster in enumerate(clusters, 1)
    ]


def safe_file_name(name: str, number: int) -> str:
    """A playlist file name for cluster `number` named `name`: `01 calm - piano - classical.m3u`,
    letters, digits, spaces and `-_.,&+()` only (the rest become `_`), at most 100 characters."""
    text = name.replace(" · ", " - ")
    cleaned = "".join(c if c.isalnum() or c in " -_.,&+()" else "_" for c in text).strip(" .") or "cluster"
    return f"{number:02d} {cleaned[:100]}.m3u"
