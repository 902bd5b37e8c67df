"""The song index on disk: tag vectors in SQLite, plus an Annoy forest for fast similarity.

A folder holds `songs.sqlite` (songs, failures, metadata) and at most one finished Annoy
file `songs-<generation>.annoy`. SQLite is the source of truth; the Annoy file is a
derived, replaceable acceleration structure, and `nearest` stays correct when it is stale
(songs added, changed or removed since it was built) or missing.

Paths are kept as the bytes `os.fsencode` gives (BLOB columns, also in `annoy_items`), so
that file names that are not valid UTF-8 (which arrive as str with surrogate escapes)
round-trip exactly.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Trees in the Annoy forest. 20 trees over 20,000 songs of 189 tags build in about
#: 0.3-0.7 s on one busy core and make a ~23 MB file; more trees buy little extra recall.
ANNOY_TREES = 20
#: Annoy examines about SEARCH_K_FACTOR * n_trees * max(count, MIN_SEARCH_COUNT) candidates
#: per query: 10,000 for a top-10 query. On 20,000 synthetic tag vectors with correlated
#: tags that gave 0.99-0.998 top-10 agreement with exact search (half that search_k gave
#: 0.93-0.99 depending on how correlated the tags are), at 1-2 ms per query.
SEARCH_K_FACTOR = 50
#: Small counts still search as if for this many, because top-1 with a tiny search_k is
#: far less reliable than top-10.
MIN_SEARCH_COUNT = 10
ANNOY_SEED = 1234
#: How long a writer waits for another connection's write transaction before giving up.
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1

DATABASE_NAME = "songs.sqlite"
LOCK_NAME = "lock"
ANNOY_PREFIX = "songs-"
ANNOY_SUFFIX = ".annoy"
TEMPORARY_SUFFIX = ".tmp"

# These mean a mistake in this module, not a damaged file, so they are not translated.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError)
# Vectors are stored little-endian whatever the machine, so an index folder can be copied.
_VECTOR_DTYPE = np.dtype("<f4")
# Below SQLite's historical limit of 999 bound parameters per statement.
_SQL_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS songs (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    duration REAL NOT NULL,
    vector BLOB NOT NULL,
    rev INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS songs_rev ON songs (rev);
CREATE TABLE IF NOT EXISTS failures (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS annoy_items (item INTEGER PRIMARY KEY, path BLOB NOT NULL);
"""


class StoreError(Exception):
    """The index is missing, damaged or unusable; the message says what to do."""


class ModelMismatchError(StoreError):
    """The index was built with a different tag model than the one in use."""


class IndexBusyError(StoreError):
    """Another process is writing to the index."""


def _encode(path: str) -> bytes:
    return os.fsencode(path)


def _decode(raw: bytes) -> str:
    return os.fsdecode(raw)


def _printable(text: str) -> str:
    # Failure reasons often quote a non-UTF-8 file name; SQLite TEXT must be valid UTF-8.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _guarded(method):
    """Turn SQLite's complaints about the file into StoreError with the rebuild hint."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _BUGS:
            raise
        except sqlite3.DatabaseError as error:
            raise self._translate(error) from error

    return wrapper


def _top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, best first."""
    if count <= 0 or len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    if count >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, count - 1)[:count]
    return part[np.argsort(-scores[part], kind="stable")]


def _search_k(state: dict, wanted: int) -> int:
    """How many candidates Annoy examines to find `wanted` neighbours."""
    return SEARCH_K_FACTOR * state["trees"] * max(wanted, MIN_SEARCH_COUNT)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector has no direction; giving it similarity 0 to everything beats NaN.
    norms[norms == 0] = 1.0
    return matrix / norms


class IndexStore:
    """One index folder. Not thread-safe: use one instance per thread or process.

    Tag vectors are float32 arrays of shape (n_tags,) with values in 0..1; durations are in
    seconds; sizes in bytes; modification times in integer nanoseconds (`st_mtime_ns`).
    """

    def __init__(self, folder: str | Path, create: bool = True):
        """Open the index in `folder`; with create=True make the folder and tables if needed.

        Raises StoreError when create=False and there is no index there, or when the
        database is damaged.
        """
        self.folder = Path(folder)
        self._database = self.folder / DATABASE_NAME
        self._connection: sqlite3.Connection | None = None
        self._depth = 0            # nesting of transaction()/_write()
        self._lock_depth = 0
        self._writes = 0           # own writes: PRAGMA data_version only sees other connections'
        self._matrix_cache = None  # (key, paths, matrix, unit rows) for exact search
        self._annoy_cache = None   # (file name, loaded AnnoyIndex)
        if not create and not self._database.is_file():
            raise StoreError(f"no index at {self.folder}: run `qbsd index DIR` first")
        try:
            if create:
                self.folder.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self._database, timeout=BUSY_TIMEOUT_S,
                                               isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open the index at {self.folder}: {error}") from error
        try:
            self._open(create)
        except BaseException:
            self.close()
            raise

    @_guarded
    def _open(self, create: bool) -> None:
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # WAL lets `qbsd query` read while `qbsd index` writes.
        connection.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL can lose the last commits on power loss but never corrupts.
        connection.execute("PRAGMA synchronous = NORMAL")
        has_meta = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if not has_meta:
            if not create:
                raise StoreError(f"no index at {self.folder}: run `qbsd index DIR` first")
            with self._write():
                # executescript() would COMMIT on its own, so run the statements one by one.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("song_rev", "0"),
                     ("annoy_next_generation", "1")])
        version = self._meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"the index at {self.folder} has format version {version}, this qbsd reads "
                f"version {SCHEMA_VERSION}: delete the folder {self.folder} and run "
                f"`qbsd index` again")

    def close(self) -> None:
        """Close the database; the object is unusable afterwards."""
        self._annoy_cache = None
        self._matrix_cache = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ errors and transactions

    def _damaged(self, detail: str) -> StoreError:
        return StoreError(
            f"the index at {self.folder} is damaged ({detail}): rebuild it with "
            f"`qbsd index --rebuild DIR` (DIR: your music folders), or delete the folder "
            f"{self.folder} and run `qbsd index DIR` again")

    def _translate(self, error: sqlite3.DatabaseError) -> StoreError:
        message = str(error)
        if isinstance(error, sqlite3.OperationalError) and ("locked" in message
                                                            or "busy" in message):
            return IndexBusyError(
                f"the index at {self.folder} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:.0f} s; try again when it has finished")
        return self._damaged(message)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, or part of the caller's transaction() if one is open."""
        if self._depth:
            self._writes += 1
            yield
            return
        # IMMEDIATE takes the write lock up front, so a busy database waits here (under
        # busy_timeout) instead of failing half-way through with SQLITE_BUSY.
        self._connection.execute("BEGIN IMMEDIATE")
        self._depth += 1
        self._writes += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._connection.execute("ROLLBACK")
            raise
        self._depth -= 1
        try:
            self._connection.execute("COMMIT")
        except BaseException:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self) -> Iterator[None]:
        """A consistent snapshot for several SELECTs (WAL: writers are not blocked)."""
        if self._depth or self._connection.in_transaction:
            yield
            return
        self._connection.execute("BEGIN")
        try:
            yield
        finally:
            if self._connection is not None and self._connection.in_transaction:
                self._connection.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many put_song/put_failure/remove calls into one SQLite transaction.

        Commits on normal exit and rolls everything back on an exception. Nested uses join
        the outer transaction. Outside it, each of those calls commits on its own.
        """
        try:
            with self._write():
                yield
        except _BUGS:
            raise
        except sqlite3.DatabaseError as error:
            raise self._translate(error) from error

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
        descriptor = os.open(self.folder / LOCK_NAME,
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise IndexBusyError(f"another `qbsd index` is running on {self.folder}") from None
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    # ------------------------------------------------------------------ metadata

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        self._connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    @_guarded
    def model_id(self) -> str | None:
        """Id of the tag model the stored vectors come from; None before bind_model."""
        return self._meta("model_id")

    @property
    @_guarded
    def tags(self) -> list[str] | None:
        """The model's tag names, in vector column order; None before bind_model."""
        raw = self._meta("tags")
        return None if raw is None else json.loads(raw)

    @property
    @_guarded
    def n_tags(self) -> int | None:
        """Length of every stored vector; None before bind_model."""
        raw = self._meta("n_tags")
        return None if raw is None else int(raw)

    @_guarded
    def bind_model(self, model_id: str, tags: list[str]) -> None:
        """Record the model on first use; afterwards insist on the same model.

        Raises ModelMismatchError naming both ids when the index was built with another
        model, since vectors from two models are not comparable.
        """
        with self._write():
            stored_id = self._meta("model_id")
            if stored_id is None:
                self._set_meta("model_id", model_id)
                self._set_meta("tags", json.dumps(list(tags)))
                self._set_meta("n_tags", str(len(tags)))
                return
            if stored_id != model_id:
                raise ModelMismatchError(
                    f"the index at {self.folder} was built with model {stored_id}, but the "
                    f"current model is {model_id}: re-index with `qbsd index --rebuild DIR`")
            if json.loads(self._meta("tags")) != list(tags):
                raise ModelMismatchError(
                    f"the index at {self.folder} was built with model {stored_id} and a "
                    f"different tag list than model {model_id} has now: re-index with "
                    f"`qbsd index --rebuild DIR`")

    # ------------------------------------------------------------------ songs and failures

    def _checked_vector(self, vector: np.ndarray) -> np.ndarray:
        n_tags = self.n_tags
        if n_tags is None:
            raise RuntimeError("bind_model() must be called before storing or querying vectors")
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (n_tags,):
            raise ValueError(f"tag vector has shape {array.shape}, the index expects ({n_tags},)")
        if not np.all(np.isfinite(array)):
            raise ValueError("tag vector contains NaN or infinity")
        return array

    @_guarded
    def known_files(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size in bytes, mtime in ns, "ok" or "failed") for every stored file."""
        with self._read():
            rows = self._connection.execute(
                "SELECT path, size, mtime_ns, 'ok' FROM songs "
                "UNION ALL SELECT path, size, mtime_ns, 'failed' FROM failures").fetchall()
        return {_decode(path): (size, mtime_ns, status) for path, size, mtime_ns, status in rows}

    @_guarded
    def put_song(self, path: str, size: int, mtime_ns: int, duration: float,
                 vector: np.ndarray) -> None:
        """Insert or replace a song: size in bytes, mtime in ns, duration in seconds, and its
        tag vector of shape (n_tags,). Any recorded failure for the path is dropped."""
        array = self._checked_vector(vector)
        key = _encode(path)
        with self._write():
            # A per-song revision tells nearest() which songs changed after the Annoy build.
            self._connection.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'song_rev'")
            rev = int(self._meta("song_rev"))
            self._connection.execute(
                "INSERT INTO songs (path, size, mtime_ns, duration, vector, rev) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "duration = excluded.duration, vector = excluded.vector, rev = excluded.rev",
                (key, int(size), int(mtime_ns), float(duration),
                 array.astype(_VECTOR_DTYPE).tobytes(), rev))
            self._connection.execute("DELETE FROM failures WHERE path = ?", (key,))

    @_guarded
    def put_failure(self, path: str, size: int, mtime_ns: int, reason: str) -> None:
        """Record that a file could not be analysed (so it is not retried until it changes);
        replaces any stored song for the path."""
        key = _encode(path)
        with self._write():
            self._connection.execute(
                "INSERT INTO failures (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, reason = excluded.reason",
                (key, int(size), int(mtime_ns), _printable(reason)))
            self._connection.execute("DELETE FROM songs WHERE path = ?", (key,))

    @_guarded
    def remove(self, paths: Iterable[str]) -> int:
        """Forget songs and failures for these paths; returns how many rows were deleted."""
        keys = [(_encode(path),) for path in paths]
        if not keys:
            return 0
        with self._write():
            removed = self._connection.executemany(
                "DELETE FROM songs WHERE path = ?", keys).rowcount
            removed += self._connection.executemany(
                "DELETE FROM failures WHERE path = ?", keys).rowcount
        return removed

    @_guarded
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) for every file that could not be analysed, sorted by path bytes."""
        rows = self._connection.execute(
            "SELECT path, reason FROM failures ORDER BY path").fetchall()
        return [(_decode(path), reason) for path, reason in rows]

    @_guarded
    def song_count(self) -> int:
        """How many songs have a stored vector (failures not included)."""
        return self._connection.execute("SELECT count(*) FROM songs").fetchone()[0]

    @_guarded
    def vector_for(self, path: str, size: int | None = None,
                   mtime_ns: int | None = None) -> np.ndarray | None:
        """The stored tag vector (float32, shape (n_tags,)) or None if the song is unknown,
        or, when size (bytes) and mtime_ns are given, if it was stored for another version."""
        row = self._connection.execute(
            "SELECT vector, size, mtime_ns FROM songs WHERE path = ?", (_encode(path),)).fetchone()
        if row is None or (size is not None and (row[1], row[2]) != (size, mtime_ns)):
            return None
        return np.frombuffer(row[0], dtype=_VECTOR_DTYPE).astype(np.float32)

    def _vectors_from_rows(self, rows: list[tuple[bytes, bytes]]) -> np.ndarray:
        n_tags = self.n_tags or 0
        joined = b"".join(row[1] for row in rows)
        if len(joined) != len(rows) * n_tags * _VECTOR_DTYPE.itemsize:
            raise self._damaged("a stored vector has the wrong length")
        vectors = np.frombuffer(joined, dtype=_VECTOR_DTYPE).reshape(len(rows), n_tags)
        return vectors.astype(np.float32)

    def _all_vectors_cached(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(paths, vectors, unit-length vectors), read-only and shared between calls."""
        # Reloading every vector per query would dominate repeated exact searches; the key
        # changes whenever this or any other connection commits a change.
        key = (self._connection.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._matrix_cache is None or self._matrix_cache[0] != key:
            with self._read():
                rows = self._connection.execute(
                    "SELECT path, vector FROM songs ORDER BY path").fetchall()
                matrix = self._vectors_from_rows(rows)
            unit = _unit_rows(matrix)
            matrix.setflags(write=False)
            unit.setflags(write=False)
            self._matrix_cache = (key, [_decode(row[0]) for row in rows], matrix, unit)
        return self._matrix_cache[1:]

    @_guarded
    def all_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every song: paths sorted by their bytes, and a float32 array (n, n_tags)."""
        paths, matrix, _unit = self._all_vectors_cached()
        return list(paths), matrix.copy()

    # ------------------------------------------------------------------ queries

    def _exact(self, query: np.ndarray, count: int,
               exclude: str | None) -> list[tuple[str, float]]:
        paths, _matrix, unit = self._all_vectors_cached()
        if not paths:
            return []
        norm = float(np.linalg.norm(query))
        scores = unit @ (query / norm if norm else query)
        if exclude is not None:
            try:
                excluded = paths.index(exclude)
            except ValueError:
                pass
            else:
                scores[excluded] = -np.inf
                count = min(count, len(paths) - 1)
        return [(paths[i], float(scores[i])) for i in _top(scores, count)]

    @_guarded
    def exact_nearest(self, vector: np.ndarray, count: int,
                      exclude: str | None = None) -> list[tuple[str, float]]:
        """The `count` songs with the highest cosine similarity to `vector` (shape (n_tags,)),
        best first, as (path, cosine in -1..1), skipping the path `exclude`. Scans every song."""
        if count <= 0 or self.n_tags is None:
            return []
        return self._exact(self._checked_vector(vector), count, exclude)

    @_guarded
    def nearest(self, vector: np.ndarray, count: int,
                exclude: str | None = None) -> list[tuple[str, float]]:
        """Like exact_nearest, but through the Annoy forest when the index is big enough.

        Songs added or changed since the last rebuild_annoy() are scored exactly and merged
        in, and removed songs are skipped, so results never name a stale song. Raises
        StoreError when the Annoy file is damaged.
        """
        if count <= 0 or self.n_tags is None:
            return []
        query = self._checked_vector(vector)
        wanted = count + (exclude is not None)
        for _attempt in range(3):
            with self._read():
                state = self._annoy_state()
                if state is None or not np.any(query) or _search_k(state, wanted) >= state["count"]:
                    # Annoy would look at every item anyway; exact is as cheap and exact.
                    return self._exact(query, count, exclude)
                try:
                    index = self._load_annoy(state)
                except FileNotFoundError:
                    # A concurrent rebuild replaced the file between our snapshot and the
                    # open; a fresh snapshot names the new one.
                    continue
                return self._annoy_search(index, state, query, count, exclude)
        return self.exact_nearest(query, count, exclude)

    def _annoy_state(self) -> dict | None:
        """The committed forest: file, size, crc32, rev, trees, count; None if there is none."""
        name = self._meta("annoy_file")
        if not name:
            return None
        return {**json.loads(self._meta("annoy")), "file": name}

    def _load_annoy(self, state: dict):
        if self._annoy_cache is not None and self._annoy_cache[0] == state["file"]:
            return self._annoy_cache[1]
        from annoy import AnnoyIndex

        path = self.folder / state["file"]
        size = path.stat().st_size  # FileNotFoundError is handled by the caller
        if size != state["size"]:
            raise self._damaged(f"{path.name} has {size} bytes instead of {state['size']}")
        # Annoy follows child offsets in the file blindly, so garbage could crash the
        # process; a checksum (~25 ms per 100 MB) rules that out before loading.
        checksum = 0
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                checksum = zlib.crc32(chunk, checksum)
        if checksum != state["crc32"]:
            raise self._damaged(f"{path.name} fails its checksum")
        index = AnnoyIndex(self.n_tags, "angular")
        try:
            index.load(str(path))
        except OSError as error:
            raise self._damaged(f"{path.name}: {error}") from error
        if index.get_n_items() != state["count"]:
            raise self._damaged(f"{path.name} holds {index.get_n_items()} songs instead of "
                                f"{state['count']}")
        self._annoy_cache = (state["file"], index)
        return index

    def _annoy_search(self, index, state: dict, query: np.ndarray, count: int,
                      exclude: str | None) -> list[tuple[str, float]]:
        exclude_key = None if exclude is None else _encode(exclude)
        # Songs written after the build are not in the forest (or are there with an old
        # vector): score them exactly.
        fresh = self._connection.execute(
            "SELECT path, vector FROM songs WHERE rev > ?", (state["rev"],)).fetchall()
        results: dict[bytes, float] = {}
        if fresh:
            vectors = _unit_rows(self._vectors_from_rows(fresh))
            scores = vectors @ (query / np.linalg.norm(query))
            results.update((row[0], float(score)) for row, score in zip(fresh, scores))
        wanted = count + (exclude is not None)
        while True:
            items, distances = index.get_nns_by_vector(
                query, wanted, search_k=_search_k(state, wanted), include_distances=True)
            live = self._live_items(items, state["rev"])
            found = {live[item]: 1.0 - distance * distance / 2.0
                     for item, distance in zip(items, distances) if item in live}
            found.pop(exclude_key, None)
            # Skipped items (removed or changed songs) can leave fewer than asked for.
            if len(found) >= count or len(items) < wanted or wanted >= state["count"]:
                break
            wanted = min(state["count"], 2 * wanted + (count - len(found)))
        results.update(found)
        results.pop(exclude_key, None)
        ranked = sorted(results.items(), key=lambda pair: -pair[1])[:count]
        return [(_decode(path), float(np.clip(score, -1.0, 1.0))) for path, score in ranked]

    def _live_items(self, items: list[int], rev: int) -> dict[int, bytes]:
        """item -> path for items whose song still has the vector the forest was built from."""
        live: dict[int, bytes] = {}
        for start in range(0, len(items), _SQL_CHUNK):
            chunk = items[start:start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            live.update(self._connection.execute(
                "SELECT a.item, a.path FROM annoy_items AS a JOIN songs AS s ON s.path = a.path "
                f"WHERE s.rev <= ? AND a.item IN ({marks})", (rev, *chunk)).fetchall())
        return live

    @_guarded
    def rank_by_tags(self, tag_columns: list[int], count: int) -> list[tuple[str, float]]:
        """Songs best matching a description: score = mean of the vector over `tag_columns`
        (column indices into `tags`), as (path, score in 0..1), highest first."""
        n_tags = self.n_tags
        if count <= 0 or n_tags is None:
            return []
        columns = [int(column) for column in tag_columns]
        if not columns:
            raise ValueError("rank_by_tags needs at least one tag column")
        if min(columns) < 0 or max(columns) >= n_tags:
            raise ValueError(f"tag columns must be in 0..{n_tags - 1}")
        paths, matrix, _unit = self._all_vectors_cached()
        if not paths:
            return []
        scores = matrix[:, columns].mean(axis=1)
        return [(paths[i], float(scores[i])) for i in _top(scores, count)]

    # ------------------------------------------------------------------ building the forest

    def _annoy_files(self) -> list[tuple[int, Path]]:
        """(generation, path) for every finished or temporary Annoy file in the folder."""
        found = []
        for entry in self.folder.iterdir():
            name = entry.name
            if not name.startswith(ANNOY_PREFIX):
                continue
            stem = name[len(ANNOY_PREFIX):]
            for suffix in (ANNOY_SUFFIX + TEMPORARY_SUFFIX, ANNOY_SUFFIX):
                if stem.endswith(suffix) and stem[:-len(suffix)].isdigit():
                    found.append((int(stem[:-len(suffix)]), entry))
                    break
        return found

    @_guarded
    def rebuild_annoy(self, n_trees: int = ANNOY_TREES) -> None:
        """Build a fresh Annoy forest (angular metric, `n_trees` trees) over all songs.

        The file appears under a new name only once complete, and the database switches to
        it in one transaction, so readers and a kill at any moment always leave the last
        complete forest usable. Call it while holding writer_lock().
        """
        if self._depth:
            raise RuntimeError("rebuild_annoy() cannot run inside transaction()")
        if n_trees < 1:
            raise ValueError("n_trees must be at least 1")
        with self._write():
            # Taking the number up front keeps two builders from ever sharing a file name.
            generation = int(self._meta("annoy_next_generation"))
            self._set_meta("annoy_next_generation", str(generation + 1))
        with self._read():
            rev = int(self._meta("song_rev"))
            rows = self._connection.execute(
                "SELECT path, vector FROM songs ORDER BY path").fetchall()
            matrix = self._vectors_from_rows(rows)
        name = f"{ANNOY_PREFIX}{generation}{ANNOY_SUFFIX}"
        final = self.folder / name
        state = None
        if rows:
            state = self._write_annoy(matrix, final, n_trees)
            state.update(rev=rev, trees=n_trees, count=len(rows))
        with self._write():
            if int(self._meta("annoy_generation") or 0) > generation:
                # A newer build committed meanwhile; ours is from an older snapshot.
                state = None
                superseded = True
            else:
                superseded = False
                self._connection.execute("DELETE FROM annoy_items")
                if state is not None:
                    self._connection.executemany(
                        "INSERT INTO annoy_items (item, path) VALUES (?, ?)",
                        ((item, row[0]) for item, row in enumerate(rows)))
                self._set_meta("annoy_file", name if state else "")
                self._set_meta("annoy", json.dumps(state) if state else "")
                self._set_meta("annoy_generation", str(generation))
        if superseded:
            final.unlink(missing_ok=True)
            return
        self._annoy_cache = None
        # Older generations can no longer be committed, so their files (finished, or left
        # half-written by a killed build) are garbage. Newer ones belong to a build in flight.
        for file_generation, path in self._annoy_files():
            if file_generation < generation:
                path.unlink(missing_ok=True)

    def _write_annoy(self, matrix: np.ndarray, final: Path, n_trees: int) -> dict:
        from annoy import AnnoyIndex

        temporary = final.with_name(final.name + TEMPORARY_SUFFIX)
        index = AnnoyIndex(matrix.shape[1], "angular")
        index.set_seed(ANNOY_SEED)
        for item, vector in enumerate(matrix):
            index.add_item(item, vector)
        index.build(n_trees)
        try:
            index.save(str(temporary))
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise StoreError(f"cannot write {temporary}: {error}") from error
        finally:
            index.unload()
        checksum = 0
        with open(temporary, "rb") as stream:
            while chunk := stream.read(1 << 22):
                checksum = zlib.crc32(chunk, checksum)
            # The rename must not reach the disk before the contents do.
            os.fsync(stream.fileno())
        size = temporary.stat().st_size
        os.replace(temporary, final)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return {"size": size, "crc32": checksum}
