"""IndexStore: one index folder, its database and its forest behind one object, and the
similarity search that merges the two.

The forest answers for the songs it was built from; songs written since are scored
exactly and merged in, and songs removed or rewritten since are skipped, so `nearest` is
correct when the forest is stale or missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..ranking import top, unit, unit_rows
from ..songinfo import SongInfo
from . import layout
from .database import FileState, SongDatabase, guarded
from .forest import ANNOY_TREES, Forest, ForestState
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


class IndexStore:
    """One index folder. Not thread-safe: use one instance per thread or process.

    Tag vectors are float32 arrays of shape (n_tags,) with values in 0..1; durations are in
    seconds; sizes in bytes; modification times in integer nanoseconds (`st_mtime_ns`).
    """

    def __init__(self, folder: str | Path, create: bool = True, read_only: bool = False):
        """Open the index in `folder`; with create=True make the folder and tables if needed;
        read_only=True (queries) needs no write access to the folder and cannot write.

        Raises IndexMissingError when create=False and there is no index there,
        IndexDamagedError when the database is damaged, StoreError when it cannot be opened.
        """
        self.folder = Path(folder)
        self._lock_depth = 0
        self._database = SongDatabase(self.folder, create, read_only)
        self._forest = Forest(self.folder)

    @staticmethod
    def reset(folder: str | Path) -> None:
        """Delete the index in `folder` (its database and every Annoy file, not the lock), so
        that the next IndexStore(folder) starts empty. Hold writer_lock(folder) meanwhile.
        Raises StoreError when a file cannot be deleted."""
        layout.reset(Path(folder))

    def close(self) -> None:
        """Close the database; the object is unusable afterwards."""
        self._forest.unload()
        self._database.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def transaction(self) -> AbstractContextManager[None]:
        """Group many put_song/put_failure/remove calls into one SQLite transaction.

        Commits on normal exit and rolls everything back on an exception. Nested uses join
        the outer transaction. Outside it, each of those calls commits on its own.
        """
        return self._database.transaction()

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

    def bind_model(self, model_id: str, tags: list[str]) -> None:
        """Record the model on first use; afterwards insist on the same model.

        Raises ModelMismatchError naming both ids when the index was built with another
        model (or the same id with another tag list), since vectors from two models are not
        comparable.
        """
        self._database.bind_model(model_id, tags)

    def require_model(self, model_id: str | None, what: str) -> None:
        """Raise ModelMismatchError when the index holds vectors of another model than
        `model_id`, the model of `what` ("the model in use", "the query", a JSON line...).
        An index with no model yet accepts any."""
        self._database.require_model(model_id, what)

    def put_song(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        duration: float,
        vector: np.ndarray,
        info: SongInfo | None = None,
        fingerprint: bytes | None = None,
    ) -> None:
        """Insert or replace a song: size in bytes, mtime in ns, duration in seconds (analysed),
        its tag vector of shape (n_tags,), what it is called (None: not read yet) and its
        audio fingerprint (fingerprint.py; None: none, and only the vector threshold finds
        its duplicates). Any recorded failure for the path is dropped. Readers hand the
        fingerprint back as SongInfo.fingerprint."""
        self._database.put_song(path, size, mtime_ns, duration, vector, info, fingerprint)

    def clear(self) -> None:
        """Forget every song, failure and the model within the caller's transaction(): a
        rebuild fills the index again in the same transaction, so readers see the old
        songs until it commits, and a rollback restores them."""
        self._database.clear()

    def set_song_info(self, path: str, info: SongInfo) -> None:
        """Record a stored song's artist, album, title and length; its vector stays."""
        self._database.set_song_info(path, info)

    def paths_without_info(self) -> list[str]:
        """The songs whose artist, album and title are still to be read (an older index's,
        or JSON lines' that left artist or album unknown)."""
        return self._database.paths_without_info()

    def all_info_read(self) -> None:
        """Record that every song has its artist, album and title now, so that the next
        paths_without_info answers without reading the songs table."""
        self._database.all_info_read()

    def put_failure(self, path: str, size: int, changed_ns: int, reason: str) -> None:
        """Record that a file could not be analysed, so it is not retried until its size
        (bytes) or its change time `changed_ns` (ns; qbsd gives the later of st_mtime_ns and
        st_ctime_ns) differ; replaces any stored song for the path."""
        self._database.put_failure(path, size, changed_ns, reason)

    def remove(self, paths: Iterable[str]) -> int:
        """Forget songs and failures for these paths; returns how many rows were deleted."""
        return self._database.remove(paths)

    # ------------------------------------------------------------------ reading

    @property
    def model_id(self) -> str | None:
        """Id of the tag model the stored vectors come from; None before bind_model."""
        return self._database.model_id

    @property
    def tags(self) -> list[str] | None:
        """The model's tag names, in vector column order; None before bind_model."""
        return self._database.tags

    @property
    def n_tags(self) -> int | None:
        """Length of every stored vector; None before bind_model."""
        return self._database.n_tags

    def known_files(self) -> dict[str, FileState]:
        """path -> FileState (size, time_ns, status "ok" or "failed") for every stored file.

        time_ns is the song's st_mtime_ns, or the change time recorded with a failure."""
        return self._database.known_files()

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) for every file that could not be analysed, sorted by path bytes."""
        return self._database.failures()

    def song_count(self) -> int:
        """How many songs have a stored vector (failures not included)."""
        return self._database.song_count()

    def vector_for(self, path: str, size: int | None = None, mtime_ns: int | None = None) -> np.ndarray | None:
        """The stored tag vector (float32, shape (n_tags,)) or None if the song is unknown,
        or, when size (bytes) and mtime_ns are given, if it was stored for another version."""
        return self._database.vector_for(path, size, mtime_ns)

    def all_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every song: paths sorted by their bytes, and a float32 array (n, n_tags)."""
        paths, matrix, _unit = self._database.vectors()
        return list(paths), matrix.copy()

    def catalogue(self) -> tuple[list[str], np.ndarray, np.ndarray, list[SongInfo | None]]:
        """Every song, read-only and shared between calls: (paths sorted by their bytes,
        vectors float32 (n, n_tags), the same scaled to unit length, SongInfo or None each)."""
        paths, matrix, unit = self._database.vectors()
        return paths, matrix, unit, self._database.song_infos()

    def songs_for(self, paths: list[str]) -> dict[str, tuple[np.ndarray, SongInfo | None]]:
        """path -> (vector float32 (n_tags,), SongInfo or None) for those of `paths` stored."""
        return self._database.songs_for(paths)

    def scan(self, score) -> tuple[np.ndarray, np.ndarray]:
        """Every song scored chunk by chunk, without holding every vector or a Python object
        per song: (rowids, scores) in path (byte) order; `score(vectors, unit_rows)` maps a
        chunk (float32 (m, n_tags), and the same at unit length) to (m,) or (m, k) values.
        Look the rowids up with songs_by_rowid."""
        return self._database.scan(score)

    def songs_by_rowid(self, rowids) -> dict[int, tuple[str, np.ndarray, SongInfo | None]]:
        """rowid -> (path, vector float32 (n_tags,), SongInfo or None) for those of `rowids`
        (from scan) still stored."""
        return self._database.songs_by_rowid(rowids)

    # ------------------------------------------------------------------ similarity

    def exact_nearest(self, vector: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]:
        """The `count` songs with the highest cosine similarity to `vector` (shape (n_tags,)),
        best first, as (path, cosine in -1..1), skipping the path `exclude`. Scans every song."""
        if count <= 0 or self.n_tags is None:
            return []
        return self._exact(self._database.checked_vector(vector), count, exclude)

    @guarded
    def nearest(self, vector: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]:
        """Like exact_nearest, but through the Annoy forest when the index is big enough.

        Songs added or changed since the last rebuild_annoy() are scored exactly and merged
        in, and removed songs are skipped, so results never name a stale song. Raises
        IndexDamagedError when the Annoy file is damaged.
        """
        if count <= 0 or self.n_tags is None:
            return []
        query = self._database.checked_vector(vector)
        wanted = count + (exclude is not None)
        for _attempt in range(_FOREST_ATTEMPTS):
            with self._database.snapshot():
                state = self._database.forest_state()
                if (
                    state is None
                    or not np.any(query)
                    or wanted >= state.count
                    or (state.search_k(wanted) >= state.count and state.count <= EXACT_SEARCH_MAX)
                ):
                    # Annoy would look at (nearly) every item anyway; exact is as cheap and exact.
                    return self._exact(query, count, exclude)
                try:
                    forest = self._forest.load(state, self.n_tags)
                except FileNotFoundError:
                    # A concurrent rebuild replaced the file between our snapshot and the
                    # open; a fresh snapshot names the new one.
                    continue
                return self._merged(forest, state, query, count, exclude)
        return self._exact(query, count, exclude)

    def _exact(self, query: np.ndarray, count: int, exclude: str | None) -> list[tuple[str, float]]:
        direction = unit(query)
        rowids, scores = self._database.scan(lambda _vectors, units: units @ direction)
        if not len(rowids):
            return []
        scores = np.array(scores, dtype=np.float32)
        if exclude is not None:
            excluded = self._database.rowid_for(exclude)
            if excluded is not None:
                scores[rowids == excluded] = -np.inf
                count = min(count, len(rowids) - 1)
        best = top(scores, count)
        songs = self._database.songs_by_rowid(rowids[best])
        return [(songs[rowid][0], float(scores[i])) for i, rowid in zip(best, rowids[best].tolist()) if rowid in songs]

    def _merged(
        self, forest: AnnoyIndex, state: ForestState, query: np.ndarray, count: int, exclude: str | None
    ) -> list[tuple[str, float]]:
        """The forest's answer for the songs it still describes, merged with exact scores
        for the songs written after it was built. `query` is non-zero."""
        exclude_key = None if exclude is None else os.fsencode(exclude)
        # Songs written after the build are not in the forest (or are there with an old
        # vector): score them exactly.
        fresh_keys, fresh_vectors = self._database.fresh_songs(state.rev)
        results: dict[bytes, float] = {}
        if fresh_keys:
            scores = unit_rows(fresh_vectors) @ unit(query)
            results.update(zip(fresh_keys, map(float, scores), strict=True))
        wanted = count + (exclude is not None)
        while True:
            # capped at Annoy's own exhaustive default (every item of every tree)
            search_k = min(state.search_k(wanted), state.trees * state.count)
            items, distances = forest.get_nns_by_vector(query, wanted, search_k=search_k, include_distances=True)
            live = self._database.live_items(items, state.rev)
            # Annoy's angular distance is sqrt(2 - 2 cos) between unit vectors.
            found = {
                live[item]: 1.0 - distance * distance / 2.0
                for item, distance in zip(items, distances, strict=True)
                if item in live
            }
            found.pop(exclude_key, None)
            # Skipped items (removed or changed songs) can leave fewer than asked for.
            if len(found) >= count or len(items) < wanted or wanted >= state.count:
                break
            wanted = min(state.count, 2 * wanted + (count - len(found)))
        results.update(found)
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
        if self._database.in_transaction:
            raise RuntimeError("rebuild_annoy() cannot run inside transaction()")
        if n_trees < 1:
            raise ValueError("n_trees must be at least 1")
        # Taking the number up front keeps two builders from ever sharing a file name.
        generation = self._database.take_generation()
        rev, keys, matrix = self._database.songs_for_build()
        state = self._forest.write(generation, matrix, n_trees, rev) if keys else None
        if not self._database.commit_forest(generation, state, keys):
            # A newer build committed meanwhile; ours is from an older snapshot.
            self._forest.discard(generation)
            return
        self._forest.unload()
        self._forest.collect_garbage(generation)
