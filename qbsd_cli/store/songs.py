"""The songs and failures of an index, and the model their vectors come from: written by
`qbsd index`, read by queries (by path, by rowid, chunk by chunk, or the whole catalogue).

Every put_song takes the next song revision, so the songs written after a forest was built
are those with a higher revision than the forest's (forest_records.py). Tag vectors are
stored little-endian float32 whatever the machine, so an index folder can be copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ModelMismatchError, model_mismatch
from ..ranking import unit_rows
from ..songinfo import SongInfo
from .connection import INFO_TO_READ, Database, guarded
from .layout import damaged

# Vectors are stored little-endian whatever the machine, so an index folder can be copied.
VECTOR_DTYPE = np.dtype("<f4")
#: Songs read at a time by scan(): 8,192 x 261 tags is 8.6 MB of vectors.
SCAN_CHUNK = 8192

_INFO_COLUMNS = "artist, album, title, length, tagged, info_read"
#: What readers hand over as a SongInfo: the names and the audio fingerprint.
_READ_COLUMNS = f"{_INFO_COLUMNS}, fingerprint"

#: What the cache of vectors() changes with: (PRAGMA data_version, own writes).
_CacheKey = tuple[int, int]
#: vectors()' cache: (its key, paths, vectors, the same at unit length).
_VectorCache = tuple[_CacheKey, list[str], np.ndarray, np.ndarray]
#: A scorer of scan(): (vectors float32 (m, n_tags), the same at unit length) -> (m,) or (m, k).
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _info_values(info: SongInfo | None) -> tuple[str | None, str | None, str | None, float | None, int, int]:
    if info is None:
        return (None, None, None, None, 0, 0)
    seconds = None if info.seconds is None else float(info.seconds)
    # info_read = 0 also for names read without their folders: `qbsd index` reads them again
    return (info.artist, info.album, info.title, seconds, int(info.tagged), int(info.folders_read))


def _info_from_row(columns: Sequence[Any]) -> SongInfo | None:
    """The SongInfo of a row's _INFO_COLUMNS (artist, album, title, length, tagged,
    info_read) and, where selected, its fingerprint."""
    artist, album, title, length, tagged, info_read, *rest = columns
    fingerprint = rest[0] if rest else None
    fingerprint = bytes(fingerprint) if fingerprint is not None else None
    if not info_read and artist is None and album is None and title is None and length is None:
        # an older index's row, never read (but perhaps analysed again since: its fingerprint)
        return None if fingerprint is None else SongInfo(folders_read=False, fingerprint=fingerprint)
    return SongInfo(artist, album, title, length, bool(tagged), folders_read=bool(info_read), fingerprint=fingerprint)


class FileState(NamedTuple):
    """What the index knows of one file, to tell whether it changed since.

    `size` is in bytes. For a song (status "ok") `time_ns` is the file's `st_mtime_ns` when
    it was analysed; for a failure (status "failed") it is the change time the caller
    recorded with put_failure (qbsd takes the later of `st_mtime_ns` and `st_ctime_ns`).
    """

    size: int
    time_ns: int
    status: str

    @property
    def is_song(self) -> bool:
        return self.status == "ok"

    @property
    def is_failure(self) -> bool:
        return self.status == "failed"


def _printable(text: str) -> str:
    # Failure reasons often quote a non-UTF-8 file name; SQLite TEXT must be valid UTF-8.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class SongDatabase(Database):
    """The songs, failures and model of one index folder. Not thread-safe.

    Tag vectors are float32 arrays of shape (n_tags,) with values in 0..1; durations are in
    seconds; sizes in bytes; modification times in integer nanoseconds (`st_mtime_ns`).
    """

    # (key, paths, matrix, unit rows) for exact search, and (the same key, SongInfo per
    # path of the vector cache); both are dropped on close
    _vector_cache: _VectorCache | None = None
    _info_cache: tuple[_CacheKey, list[SongInfo | None]] | None = None

    def close(self) -> None:
        self._vector_cache = None
        self._info_cache = None
        super().close()

    # ------------------------------------------------------------------ the model

    @property
    @guarded
    def model_id(self) -> str | None:
        """Id of the tag model the stored vectors come from; None before bind_model."""
        return self._meta("model_id")

    @property
    @guarded
    def tags(self) -> list[str] | None:
        """The model's tag names, in vector column order; None before bind_model."""
        raw = self._meta("tags")
        return None if raw is None else json.loads(raw)

    @property
    @guarded
    def n_tags(self) -> int | None:
        """Length of every stored vector; None before bind_model."""
        raw = self._meta("n_tags")
        return None if raw is None else int(raw)

    @guarded
    def require_model(self, model_id: str | None, what: str) -> None:
        """Raise ModelMismatchError when the index holds vectors of another model than
        `model_id`, the model of `what` ("the model in use", "the query", a JSON line...).
        An index with no model yet accepts any."""
        stored_id = self._meta("model_id")
        if stored_id is not None and model_id != stored_id:
            raise model_mismatch(what, model_id, f"the index at {self.folder}", stored_id)

    @guarded
    def bind_model(self, model_id: str, tags: list[str]) -> None:
        """Record the model on first use; afterwards insist on the same model.

        Raises ModelMismatchError naming both ids when the index was built with another
        model (or the same id with another tag list), since vectors from two models are not
        comparable.
        """
        with self._write():
            if self._meta("model_id") is None:
                self._set_meta("model_id", model_id)
                self._set_meta("tags", json.dumps(list(tags)))
                self._set_meta("n_tags", str(len(tags)))
                return
            self.require_model(model_id, "the model in use")
            if json.loads(self._required_meta("tags")) != list(tags):
                raise ModelMismatchError(
                    f"the index at {self.folder} was built with model {model_id} and a "
                    f"different tag list than model {model_id} has now: re-index with "
                    f"`qbsd index --rebuild DIR`"
                )

    def checked_vector(self, vector: np.ndarray) -> np.ndarray:
        """`vector` as float32 of shape (n_tags,); ValueError if it has another shape or is
        not finite, RuntimeError before bind_model."""
        n_tags = self.n_tags
        if n_tags is None:
            raise RuntimeError("bind_model() must be called before storing or querying vectors")
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (n_tags,):
            raise ValueError(f"tag vector has shape {array.shape}, the index expects ({n_tags},)")
        if not np.all(np.isfinite(array)):
            raise ValueError("tag vector contains NaN or infinity")
        return array

    # ------------------------------------------------------------------ writing songs and failures

    @guarded
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
        array = self.checked_vector(vector)
        key = os.fsencode(path)
        with self._write():
            # A per-song revision tells nearest() which songs changed after the forest's build.
            self._sql.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'song_rev'")
            rev = int(self._required_meta("song_rev"))
            self._sql.execute(
                f"INSERT INTO songs (path, size, mtime_ns, duration, vector, rev, {_INFO_COLUMNS}, fingerprint) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "duration = excluded.duration, vector = excluded.vector, rev = excluded.rev, "
                "artist = excluded.artist, album = excluded.album, title = excluded.title, "
                "length = excluded.length, tagged = excluded.tagged, info_read = excluded.info_read, "
                "fingerprint = excluded.fingerprint",
                (
                    key,
                    int(size),
                    int(mtime_ns),
                    float(duration),
                    array.astype(VECTOR_DTYPE).tobytes(),
                    rev,
                    *_info_values(info),
                    bytes(fingerprint) if isinstance(fingerprint, (bytes, bytearray)) else None,
                ),
            )
            self._sql.execute("DELETE FROM failures WHERE path = ?", (key,))
            if info is None or not info.folders_read:
                self._set_meta(INFO_TO_READ, "1")

    @guarded
    def set_song_info(self, path: str, info: SongInfo) -> None:
        """Record a stored song's artist, album, title and length; its vector (and revision)
        stays."""
        with self._write():
            self._sql.execute(
                "UPDATE songs SET artist = ?, album = ?, title = ?, length = ?, tagged = ?, info_read = ? "
                "WHERE path = ?",
                (*_info_values(info), os.fsencode(path)),
            )

    @guarded
    def paths_without_info(self) -> list[str]:
        """The songs whose artist, album and title are still to be read: stored before qbsd
        read them (schema < 3), by put_song without them, or from JSON lines that left artist
        or album unknown; no table scan once `all_info_read` said there are none."""
        if self._meta(INFO_TO_READ) == "0":
            return []
        rows = self._sql.execute("SELECT path FROM songs WHERE info_read = 0 ORDER BY path").fetchall()
        return [os.fsdecode(row[0]) for row in rows]

    @guarded
    def all_info_read(self) -> None:
        """Record that every stored song has its artist, album and title (the caller read
        those of every path `paths_without_info` gave), so that the next paths_without_info
        answers without reading the songs table, until a put_song without them."""
        with self._write():
            self._set_meta(INFO_TO_READ, "0")

    @guarded
    def clear(self) -> None:
        """Forget every song, failure and the model, inside the caller's transaction(): a
        rebuild refills the index in the same transaction, so readers keep the old songs
        until it commits, and a failed rebuild rolls back to them. The forest's record
        stays: its items no longer match any song (live_items), and the next build
        replaces it."""
        with self._write():
            self._sql.execute("DELETE FROM songs")
            self._sql.execute("DELETE FROM failures")
            self._sql.execute("DELETE FROM meta WHERE key IN ('model_id', 'tags', 'n_tags')")
            self._set_meta(INFO_TO_READ, "0")

    @guarded
    def put_failure(self, path: str, size: int, changed_ns: int, reason: str) -> None:
        """Record that a file could not be analysed, so it is not retried until its size
        (bytes) or its change time `changed_ns` (ns; qbsd gives the later of st_mtime_ns and
        st_ctime_ns) differ; replaces any stored song for the path."""
        key = os.fsencode(path)
        with self._write():
            self._sql.execute(
                "INSERT INTO failures (path, size, changed_ns, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "changed_ns = excluded.changed_ns, reason = excluded.reason",
                (key, int(size), int(changed_ns), _printable(reason)),
            )
            self._sql.execute("DELETE FROM songs WHERE path = ?", (key,))

    @guarded
    def remove(self, paths: Iterable[str]) -> int:
        """Forget songs and failures for these paths; returns how many rows were deleted."""
        keys = [(os.fsencode(path),) for path in paths]
        if not keys:
            return 0
        with self._write():
            removed = self._sql.executemany("DELETE FROM songs WHERE path = ?", keys).rowcount
            removed += self._sql.executemany("DELETE FROM failures WHERE path = ?", keys).rowcount
        return removed

    # ------------------------------------------------------------------ reading songs and failures

    @guarded
    def known_files(self) -> dict[str, FileState]:
        """path -> FileState (size, time_ns, status "ok" or "failed") for every stored song
        and failure.

        time_ns is the song's st_mtime_ns, or the change time recorded with a failure."""
        with self.snapshot():
            rows = self._sql.execute(
                "SELECT path, size, mtime_ns, 'ok' FROM songs "
                "UNION ALL SELECT path, size, changed_ns, 'failed' FROM failures"
            ).fetchall()
        return {os.fsdecode(path): FileState(size, time_ns, status) for path, size, time_ns, status in rows}

    @guarded
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) for every file that could not be analysed, sorted by path bytes."""
        rows = self._sql.execute("SELECT path, reason FROM failures ORDER BY path").fetchall()
        return [(os.fsdecode(path), reason) for path, reason in rows]

    @guarded
    def song_count(self) -> int:
        """How many songs have a stored vector (failures not included)."""
        count: int = self._sql.execute("SELECT count(*) FROM songs").fetchone()[0]
        return count

    @guarded
    def songs_for(self, paths: list[str]) -> dict[str, tuple[np.ndarray, SongInfo | None]]:
        """path -> (vector float32 (n_tags,), SongInfo or None) for those of `paths` stored."""
        found: dict[str, tuple[np.ndarray, SongInfo | None]] = {}
        keys = [os.fsencode(path) for path in paths]
        with self.snapshot():
            for rows in self._rows_in(f"SELECT path, vector, {_READ_COLUMNS} FROM songs WHERE path IN", keys):
                for row, vector in zip(rows, self._vectors_from_rows(rows)):
                    found[os.fsdecode(row[0])] = (vector, _info_from_row(row[2:]))
        return found

    @guarded
    def song_infos(self) -> list[SongInfo | None]:
        """Every song's SongInfo (None: not read yet), in the order of vectors()' paths."""
        key, paths, _matrix, _unit = self._loaded_vectors()
        if self._info_cache is None or self._info_cache[0] != key:
            with self.snapshot():
                rows = self._sql.execute(f"SELECT path, {_READ_COLUMNS} FROM songs ORDER BY path").fetchall()
            infos = {os.fsdecode(row[0]): _info_from_row(row[1:]) for row in rows}
            self._info_cache = (key, [infos.get(path) for path in paths])
        return self._info_cache[1]

    # ------------------------------------------------------------------ vectors

    @guarded
    def vector_for(self, path: str, size: int | None = None, mtime_ns: int | None = None) -> np.ndarray | None:
        """The stored tag vector (float32, shape (n_tags,)) or None if the song is unknown,
        or, when size (bytes) and mtime_ns are given, if it was stored for another version."""
        row = self._sql.execute(
            "SELECT vector, size, mtime_ns FROM songs WHERE path = ?", (os.fsencode(path),)
        ).fetchone()
        if row is None or (size is not None and (row[1], row[2]) != (size, mtime_ns)):
            return None
        return np.frombuffer(row[0], dtype=VECTOR_DTYPE).astype(np.float32)

    def _vectors_from_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """The vectors of rows whose second column is a vector, as float32, shape
        (len(rows), n_tags)."""
        n_tags = self.n_tags or 0
        joined = b"".join(row[1] for row in rows)
        if len(joined) != len(rows) * n_tags * VECTOR_DTYPE.itemsize:
            raise damaged(self.folder, "a stored vector has the wrong length")
        vectors = np.frombuffer(joined, dtype=VECTOR_DTYPE).reshape(len(rows), n_tags)
        return vectors.astype(np.float32)

    def _cache_key(self) -> _CacheKey:
        """What vectors()' cache is current for: it changes whenever this or any other
        connection commits a change."""
        return (self._sql.execute("PRAGMA data_version").fetchone()[0], self._writes)

    @guarded
    def vectors(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every song: (paths sorted by their bytes, vectors (n, n_tags), the same scaled to
        unit length), read-only and shared between calls."""
        return self._loaded_vectors()[1:]

    def _loaded_vectors(self) -> _VectorCache:
        """vectors()' cache, (re)loaded unless current."""
        # Reloading every vector per query would dominate repeated exact searches.
        key = self._cache_key()
        cache = self._vector_cache
        if cache is None or cache[0] != key:
            with self.snapshot():
                rows = self._sql.execute("SELECT path, vector FROM songs ORDER BY path").fetchall()
                matrix = self._vectors_from_rows(rows)
            unit = unit_rows(matrix)
            matrix.setflags(write=False)
            unit.setflags(write=False)
            cache = self._vector_cache = (key, [os.fsdecode(row[0]) for row in rows], matrix, unit)
        return cache

    def all_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every song: paths sorted by their bytes, and a float32 array (n, n_tags)."""
        paths, matrix, _unit = self.vectors()
        return list(paths), matrix.copy()

    def catalogue(self) -> tuple[list[str], np.ndarray, np.ndarray, list[SongInfo | None]]:
        """Every song, read-only and shared between calls: (paths sorted by their bytes,
        vectors float32 (n, n_tags), the same scaled to unit length, SongInfo or None each)."""
        paths, matrix, unit = self.vectors()
        return paths, matrix, unit, self.song_infos()

    def _cached_vectors(self) -> _VectorCache | None:
        """vectors()' cache when it is current (a long-lived process read every vector
        already), else None."""
        if self._vector_cache is None:
            return None
        return self._vector_cache if self._vector_cache[0] == self._cache_key() else None

    @guarded
    def scan(self, score: Scorer) -> tuple[np.ndarray, np.ndarray]:
        """Every song scored chunk by chunk, without holding every vector or a Python object
        per song: (rowids int64 (n,), scores) in path (byte) order, where
        `score(vectors, unit_rows)` maps a chunk of SCAN_CHUNK songs (float32 (m, n_tags),
        and the same at unit length) to (m,) or (m, k) values. Look the rowids up with
        songs_by_rowid.

        Reads the songs table in chunks (memory: one chunk and the scores, not the
        catalogue: 1 GB of vectors at a million songs); uses vectors()' cache instead
        when it is already loaded and current."""
        cached = self._cached_vectors()
        rowids: list[np.ndarray] = []
        parts: list[np.ndarray] = []
        with self.snapshot():
            if cached is not None:
                return self._rowids_in_path_order(), np.asarray(score(cached[2], cached[3]))
            cursor = self._sql.execute("SELECT rowid, vector FROM songs ORDER BY path")
            while rows := cursor.fetchmany(SCAN_CHUNK):
                rowids.append(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
                matrix = self._vectors_from_rows(rows)
                parts.append(np.asarray(score(matrix, unit_rows(matrix))))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.asarray(score(*(np.zeros((0, self.n_tags or 0), np.float32),) * 2))
        return np.concatenate(rowids), np.concatenate(parts)

    def _rowids_in_path_order(self) -> np.ndarray:
        rows = self._sql.execute("SELECT rowid FROM songs ORDER BY path").fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    @guarded
    def songs_by_rowid(self, rowids: Iterable[int]) -> dict[int, tuple[str, np.ndarray, SongInfo | None]]:
        """rowid -> (path, vector float32 (n_tags,), SongInfo or None) for those of `rowids`
        (from scan) still stored."""
        wanted = [int(rowid) for rowid in rowids]
        found: dict[int, tuple[str, np.ndarray, SongInfo | None]] = {}
        with self.snapshot():
            for rows in self._rows_in(f"SELECT rowid, vector, path, {_READ_COLUMNS} FROM songs WHERE rowid IN", wanted):
                for row, vector in zip(rows, self._vectors_from_rows(rows)):
                    found[row[0]] = (os.fsdecode(row[2]), vector, _info_from_row(row[3:]))
        return found

    @guarded
    def rowid_for(self, path: str) -> int | None:
        """The rowid (as scan gives them) of a stored song, None if it is not stored."""
        row = self._sql.execute("SELECT rowid FROM songs WHERE path = ?", (os.fsencode(path),)).fetchone()
        return None if row is None else int(row[0])
