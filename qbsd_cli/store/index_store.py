"""IndexStore: one index folder, its database and its forest behind one object, and the
similarity search that merges the two.

IndexStore is the database (connection.Database, songs.SongDatabase and
forest_records.ForestRecords, each adding its job's methods) with the forest's files
(forest.Forest), the writer lock, `nearest` and `rebuild_annoy`.

The forest answers for the songs it was built from; songs written since are scored
exactly and merged in, and songs removed or rewritten since are skipped, so `nearest` is
correct when the forest is stale or missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..ranking import top, unit, unit_rows
from . import layout
from .connection import guarded
from .forest import ANNOY_TREES, Forest, ForestState
from .forest_records import ForestRecords
from .lock import writer_lock

if TYPE_CHECKING:
    from annoy import AnnoyIndex

#: How often nearest reads the committed forest again when a concurrent rebuild deleted
#: its file before it could be opened; after that it searches exactly.
_FOREST_ATTEMPTS = 3
#: Up to this many songs, a search whose search_k reaches the song count scans every song
#: exactly (streamed from SQLite, ~0.1 s at 100k); above it the forest answers with
#: search_k as asked, since a scan reads every vector (~1 GB at a million songs) for what
#: an over-fetching query (duplicates and caps dropping candidates) gets from the forest.
EXACT_SEARCH_MAX = 100_000


class IndexStore(ForestRecords):
    """One index folder: its database (the songs, failures and model of songs.SongDatabase,
    the forest's records of forest_records.ForestRecords, the connection and transactions
    of connection.Database), its forest, its writer lock, and the search that merges the
    two. Not thread-safe: use one instance per thread or process.

    Tag vectors are float32 arrays of shape (n_tags,) with values in 0..1; durations are in
    seconds; sizes in bytes; modification times in integer nanoseconds (`st_mtime_ns`).
    """

    def __init__(self, folder: str | Path, create: bool = True, read_only: bool = False):
        self._lock_depth = 0
        self._forest = Forest(Path(folder))
        super().__init__(folder, create, read_only)

    @staticmethod
    def reset(folder: str | Path) -> None:
        """Delete the index in `folder` (its database and every Annoy file, not the lock), so
        that the next IndexStore(folder) starts empty. Hold writer_lock(folder) meanwhile.
        Raises StoreError when a file cannot be deleted."""
        layout.reset(Path(folder))

    def close(self) -> None:
        self._forest.unload()
        super().close()

    @contextmanager
    def writer_lock(self, wait: bool = True) -> Iterator[None]:
        """Hold the exclusive writer lock (`flock` on `folder/lock`) for the block.

        wait=True blocks until the other writer is done; wait=False raises IndexBusyError
        at once. Re-entering on the same object while it holds the lock does not block.
        The lock is released by the kernel if the process dies, so it never goes stale.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with writer_lock(self.folder, wait):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    # ------------------------------------------------------------------ similarity

    def exact_nearest(self, vector: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]:
        """The `count` songs with the highest cosine similarity to `vector` (shape (n_tags,)),
        best first, as (path, cosine in -1..1), skipping the path `exclude`. Scans every song."""
        if count <= 0 or self.n_tags is None:
            return []
        return self._exact(self.checked_vector(vector), count, exclude)

    @guarded
    def nearest(self, vector: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]:
        """Like exact_nearest, but through the Annoy forest when the index is big enough.

        Songs added or changed since the last rebuild_annoy() are scored exactly and merged
        in, and removed songs are skipped, so results never name a stale song. Raises
        IndexDamagedError when the Annoy file is damaged.
        """
        n_tags = self.n_tags
        if count <= 0 or n_tags is None:
            return []
        query = self.checked_vector(vector)
        wanted = count + (exclude is not None)
        for _attempt in range(_FOREST_ATTEMPTS):
            with self.snapshot():
                state = self.forest_state()
                if (
                    state is None
                    or not np.any(query)
                    or wanted >= state.count
                    or (state.search_k(wanted) >= state.count and state.count <= EXACT_SEARCH_MAX)
                ):
                    # Annoy would look at (nearly) every item anyway; exact is as cheap and exact.
                    return self._exact(query, count, exclude)
                try:
                    forest = self._forest.load(state, n_tags)
                except FileNotFoundError:
                    # A concurrent rebuild replaced the file between our snapshot and the
                    # open; a fresh snapshot names the new one.
                    continue
                return self._merged(forest, state, query, count, exclude)
        return self._exact(query, count, exclude)

    def _exact(self, query: np.ndarray, count: int, exclude: str | None) -> list[tuple[str, float]]:
        direction = unit(query)
        rowids, scores = self.scan(lambda _vectors, units: units @ direction)
        if not len(rowids):
            return []
        scores = np.array(scores, dtype=np.float32)
        if exclude is not None:
            excluded = self.rowid_for(exclude)
            if excluded is not None:
                scores[rowids == excluded] = -np.inf
                count = min(count, len(rowids) - 1)
        best = top(scores, count)
        songs = self.songs_by_rowid(rowids[best])
        return [(songs[rowid][0], float(scores[i])) for i, rowid in zip(best, rowids[best].tolist()) if rowid in songs]

    def _merged(
        self, forest: AnnoyIndex, state: ForestState, query: np.ndarray, count: int, exclude: str | None
    ) -> list[tuple[str, float]]:
        """The forest's answer for the songs it still describes, merged with exact scores
        for the songs written after it was built. `query` is non-zero."""
        exclude_key = None if exclude is None else os.fsencode(exclude)
        # Songs written after the build are not in the forest (or are there with an old
        # vector): score them exactly.
        fresh_keys, fresh_vectors = self.fresh_songs(state.rev)
        results: dict[bytes, float] = {}
        if fresh_keys:
            scores = unit_rows(fresh_vectors) @ unit(query)
            results.update(zip(fresh_keys, map(float, scores), strict=True))
        wanted = count + (exclude is not None)
        while True:
            # capped at Annoy's own exhaustive default (every item of every tree)
            search_k = min(state.search_k(wanted), state.trees * state.count)
            items, distances = forest.get_nns_by_vector(query, wanted, search_k=search_k, include_distances=True)
            live = self.live_items(items, state.rev)
            # Annoy's angular distance is sqrt(2 - 2 cos) between unit vectors.
            found = {
                live[item]: 1.0 - distance * distance / 2.0
                for item, distance in zip(items, distances, strict=True)
                if item in live
            }
            if exclude_key is not None:
                found.pop(exclude_key, None)
            # Skipped items (removed or changed songs) can leave fewer than asked for.
            if len(found) >= count or len(items) < wanted or wanted >= state.count:
                break
            wanted = min(state.count, 2 * wanted + (count - len(found)))
        results.update(found)
        if exclude_key is not None:
            results.pop(exclude_key, None)
        ranked = sorted(results.items(), key=lambda pair: -pair[1])[:count]
        return [(os.fsdecode(path), float(np.clip(score, -1.0, 1.0))) for path, score in ranked]

    # ------------------------------------------------------------------ building the forest

    def rebuild_annoy(self, n_trees: int = ANNOY_TREES) -> None:
        """Build a fresh Annoy forest (angular metric, `n_trees` trees) over all songs.

        The file appears under a new name only once complete, and the database switches to
        it in one transaction, so readers and a kill at any moment always leave the last
        complete forest usable. Call it while holding writer_lock().
        """
        if self.in_transaction:
            raise RuntimeError("rebuild_annoy() cannot run inside transaction()")
        if n_trees < 1:
            raise ValueError("n_trees must be at least 1")
        # Taking the number up front keeps two builders from ever sharing a file name.
        generation = self.take_generation()
        rev, keys, matrix = self.songs_for_build()
        state = self._forest.write(generation, matrix, n_trees, rev) if keys else None
        if not self.commit_forest(generation, state, keys):
            # A newer build committed meanwhile; ours is from an older snapshot.
            self._forest.discard(generation)
            return
        self._forest.unload()
        self._forest.collect_garbage(generation)
