"""The database of songs and failures: the index's source of truth, in SQLite.

Tables: `meta` (schema version, the model, the song revision counter, the committed
forest), `songs` (path, size, mtime, duration, tag vector, revision, and what a listener
calls the song: artist, album, title, length, see songinfo), `failures` (path,
size, change time, reason) and `annoy_items` (which song each item of the committed forest
is). Every put_song takes the next song revision, so the songs written after a forest was
built are those with a higher revision than the forest's.

Paths are kept as the bytes `os.fsencode` gives (BLOB columns, also in `annoy_items`), so
that file names that are not valid UTF-8 (which arrive as str with surrogate escapes)
round-trip exactly. SQLite's complaints about the file become IndexDamagedError (or
IndexBusyError when another writer holds it too long), with a message that says what to do.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import IndexBusyError, IndexDamagedError, ModelMismatchError, StoreError, model_mismatch
from ..ranking import unit_rows
from ..songinfo import SongInfo
from .forest import ForestState
from .layout import DATABASE_NAME, damaged, missing

#: How long a writer waits for another connection's write transaction before giving up.
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 4

# These mean a mistake in this package, not a damaged file, so they are not translated.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError)
# Vectors are stored little-endian whatever the machine, so an index folder can be copied.
VECTOR_DTYPE = np.dtype("<f4")
# Below SQLite's historical limit of 999 bound parameters per statement.
_SQL_CHUNK = 500
#: Songs read at a time by scan(): 8,192 x 261 tags is 8.6 MB of vectors.
SCAN_CHUNK = 8192

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS songs (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    duration REAL NOT NULL,
    vector BLOB NOT NULL,
    rev INTEGER NOT NULL,
    artist TEXT,
    album TEXT,
    title TEXT,
    length REAL,
    tagged INTEGER NOT NULL DEFAULT 0,
    info_read INTEGER NOT NULL DEFAULT 0,
    fingerprint BLOB
);
CREATE INDEX IF NOT EXISTS songs_rev ON songs (rev);
CREATE TABLE IF NOT EXISTS failures (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    changed_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS annoy_items (item INTEGER PRIMARY KEY, path BLOB NOT NULL);
"""

#: The statements that bring a database of schema version N to version N + 1.
_MIGRATIONS = {
    # Version 1 called the failure's change time mtime_ns, though it is the later of
    # mtime and ctime.
    1: ["ALTER TABLE failures RENAME COLUMN mtime_ns TO changed_ns"],
    # Version 3 knows each song's artist, album, title and length. Older rows get
    # info_read = 0: the next `qbsd index` reads their tags (a file open, no analysis), and
    # until then they are shown by path alone.
    2: [
        "ALTER TABLE songs ADD COLUMN artist TEXT",
        "ALTER TABLE songs ADD COLUMN album TEXT",
        "ALTER TABLE songs ADD COLUMN title TEXT",
        "ALTER TABLE songs ADD COLUMN length REAL",
        "ALTER TABLE songs ADD COLUMN tagged INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE songs ADD COLUMN info_read INTEGER NOT NULL DEFAULT 0",
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('info_to_read', '1')",  # _INFO_TO_READ
    ],
    # Version 4 keeps each song's audio fingerprint (qbsd_cli/fingerprint.py). Older rows
    # have none (NULL) until they are analysed again: their duplicates are found by the
    # vector threshold alone.
    3: ["ALTER TABLE songs ADD COLUMN fingerprint BLOB"],
}

_INFO_COLUMNS = "artist, album, title, length, tagged, info_read"
#: What readers hand over as a SongInfo: the names and the audio fingerprint.
_READ_COLUMNS = f"{_INFO_COLUMNS}, fingerprint"
#: The meta key that says whether any song may lack its artist, album and title
#: (info_read = 0): "0" lets `paths_without_info` answer without reading the whole songs
#: table (its rows hold the vectors: about a gigabyte at a million songs). Absent, as in an
#: index migrated from version 2 or made before the key existed, it counts as "1".
#: (A flag, not a partial index on info_read: SQLite cannot drop a column an index names,
#: and version-2 indexes are recreated that way in the tests.)
_INFO_TO_READ = "info_to_read"


def _info_values(info: SongInfo | None) -> tuple:
    if info is None:
        return (None, None, None, None, 0, 0)
    seconds = None if info.seconds is None else float(info.seconds)
    # info_read = 0 also for names read without their folders: `qbsd index` reads them again
    return (info.artist, info.album, info.title, seconds, int(info.tagged), int(info.folders_read))


def _info_from_row(columns: tuple) -> SongInfo | None:
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


def _connect(path: Path, read_only: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection to the database at `path`: read-write, or read-only, and then, with
    immutable=True, without SQLite's locks and WAL index (for media where not even those
    can be made)."""
    if not read_only:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    uri = path.absolute().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def _needs_immutable(error: BaseException | None) -> bool:
    """Whether a read-only connection failed only because SQLite could not make or write the
    WAL's companion files (a read-only folder, a mounted snapshot)."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or "readonly" in str(error)


def translate(folder: Path, error: sqlite3.DatabaseError) -> StoreError:
    """The StoreError that tells a user what SQLite's `error` on the index in `folder` means."""
    message = str(error)
    if isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return IndexBusyError(
            f"the index at {folder} stayed locked by another process for "
            f"{BUSY_TIMEOUT_S:.0f} s; try again when it has finished"
        )
    return damaged(folder, message)


def guarded(method):
    """Translate SQLite's errors in a method of an object with a `folder` (see translate)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _BUGS:
            raise
        except sqlite3.DatabaseError as error:
            raise translate(self.folder, error) from error

    return wrapper


class SongDatabase:
    """The SQLite database of one index folder. Not thread-safe.

    Tag vectors are float32 arrays of shape (n_tags,) with values in 0..1; durations are in
    seconds; sizes in bytes; times in integer nanoseconds.
    """

    def __init__(self, folder: Path, create: bool, read_only: bool = False):
        """Open the database in `folder`; with create=True make the folder and tables if needed.

        read_only=True (with create=False) opens it for reading only: queries need no write
        access, so an index on a read-only folder or medium answers them; writing through
        such an object fails.

        Raises IndexMissingError when create=False and there is no index there,
        IndexDamagedError when the database is damaged, and StoreError when it cannot be
        opened or is of a format this qbsd does not read.
        """
        self.folder = folder
        self._connection: sqlite3.Connection | None = None
        self._depth = 0  # nesting of transaction()/_write()
        self._writes = 0  # own writes: PRAGMA data_version only sees other connections'
        self._vector_cache = None  # (key, paths, matrix, unit rows) for exact search
        self._info_cache = None  # (the same key, SongInfo per path of the vector cache)
        path = folder / DATABASE_NAME
        if not create and not path.is_file():
            raise missing(folder)
        self.read_only = read_only and not create
        try:
            if create:
                folder.mkdir(parents=True, exist_ok=True)
            self._connection = _connect(path, self.read_only)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open the index at {folder}: {error}") from error
        try:
            try:
                self._open(create)
            except IndexDamagedError as error:
                if not self.read_only or not _needs_immutable(error.__cause__):
                    raise
                # A read-only folder or medium where SQLite cannot make the WAL's shared-memory
                # file: read the database as it is on disk (nobody can be writing it there).
                self._connection.close()
                self._connection = _connect(path, read_only=True, immutable=True)
                self._open(create)
        except BaseException:
            self.close()
            raise

    @guarded
    def _open(self, create: bool) -> None:
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not self.read_only:
            # WAL lets `qbsd similar` and `qbsd search` read while `qbsd index` writes (the
            # mode is kept in the file, so read-only connections use it too).
            connection.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL can lose the last commits on power loss but never corrupts.
            connection.execute("PRAGMA synchronous = NORMAL")
        has_meta = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if not has_meta:
            if not create:
                raise missing(self.folder)
            with self._write():
                # executescript() would COMMIT on its own, so run the statements one by one.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("song_rev", "0"),
                        ("annoy_next_generation", "1"),
                        (_INFO_TO_READ, "0"),
                    ],
                )
        version = self._meta("schema_version")
        if version is not None and version.isdigit() and int(version) in _MIGRATIONS:
            version = self._upgraded_for_reading(version) if self.read_only else self._migrate()
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"the index at {self.folder} has format version {version}, this qbsd reads "
                f"version {SCHEMA_VERSION}: delete the folder {self.folder} and run "
                f"`qbsd index` again"
            )

    def _upgraded_for_reading(self, version: str) -> str:
        """An older index opened for reading is upgraded in place by a writing connection of
        its own, where the folder allows it; on a read-only one it cannot be read."""
        try:
            SongDatabase(self.folder, create=False).close()
        except StoreError:
            raise StoreError(
                f"the index at {self.folder} has format version {version} and needs upgrading: run "
                f"`qbsd index DIR` on it once with write access to {self.folder}"
            ) from None
        return self._meta("schema_version")

    def _migrate(self) -> str:
        """Bring an older schema up to date in one transaction; returns the version reached."""
        with self._write():
            # Read again under the write lock: another process may have migrated meanwhile.
            version = int(self._meta("schema_version"))
            while version in _MIGRATIONS:
                for statement in _MIGRATIONS[version]:
                    self._connection.execute(statement)
                version += 1
            self._set_meta("schema_version", str(version))
        return str(version)

    def close(self) -> None:
        """Close the database; the object is unusable afterwards."""
        self._vector_cache = None
        self._info_cache = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # ------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction() is open."""
        return self._depth > 0

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
    def snapshot(self) -> Iterator[None]:
        """A consistent view for several reads (WAL: writers are not blocked meanwhile).

        SQLite's errors inside are not translated: use it in a guarded method."""
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
            raise translate(self.folder, error) from error

    # ------------------------------------------------------------------ metadata and the model

    def _meta(self, key: str) -> str | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        self._connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

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
        """Raise ModelMismatchError when the index holds vectors of a model other than
        `model_id`, the model of `what` (for example "the model in use", or a query)."""
        stored_id = self._meta("model_id")
        if stored_id is not None and model_id != stored_id:
            raise model_mismatch(what, model_id, f"the index at {self.folder}", stored_id)

    @guarded
    def bind_model(self, model_id: str, tags: list[str]) -> None:
        """Record the model on first use; afterwards insist on the same model and tag list."""
        with self._write():
            if self._meta("model_id") is None:
                self._set_meta("model_id", model_id)
                self._set_meta("tags", json.dumps(list(tags)))
                self._set_meta("n_tags", str(len(tags)))
                return
            self.require_model(model_id, "the model in use")
            if json.loads(self._meta("tags")) != list(tags):
                raise ModelMismatchError(
                    f"the index at {self.folder} was built with model {model_id} and a "
                    f"different tag list than model {model_id} has now: re-index with "
                    f"`qbsd index --rebuild DIR`"
                )

    # ------------------------------------------------------------------ songs and failures

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

    @guarded
    def known_files(self) -> dict[str, FileState]:
        """path -> FileState for every stored song and failure."""
        with self.snapshot():
            rows = self._connection.execute(
                "SELECT path, size, mtime_ns, 'ok' FROM songs "
                "UNION ALL SELECT path, size, changed_ns, 'failed' FROM failures"
            ).fetchall()
        return {os.fsdecode(path): FileState(size, time_ns, status) for path, size, time_ns, status in rows}

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
        audio fingerprint (None: none). Any recorded failure for the path is dropped."""
        array = self.checked_vector(vector)
        key = os.fsencode(path)
        with self._write():
            # A per-song revision tells nearest() which songs changed after the forest's build.
            self._connection.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'song_rev'")
            rev = int(self._meta("song_rev"))
            self._connection.execute(
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
            self._connection.execute("DELETE FROM failures WHERE path = ?", (key,))
            if info is None or not info.folders_read:
                self._set_meta(_INFO_TO_READ, "1")

    @guarded
    def set_song_info(self, path: str, info: SongInfo) -> None:
        """Record what a stored song is called, leaving its vector (and revision) alone."""
        with self._write():
            self._connection.execute(
                "UPDATE songs SET artist = ?, album = ?, title = ?, length = ?, tagged = ?, info_read = ? "
                "WHERE path = ?",
                (*_info_values(info), os.fsencode(path)),
            )

    @guarded
    def paths_without_info(self) -> list[str]:
        """The songs whose artist, album and title are still to be read: stored before qbsd
        read them (schema < 3), by put_song without them, or from JSON lines that left artist
        or album unknown; no table scan once `all_info_read` said there are none."""
        if self._meta(_INFO_TO_READ) == "0":
            return []
        rows = self._connection.execute("SELECT path FROM songs WHERE info_read = 0 ORDER BY path").fetchall()
        return [os.fsdecode(row[0]) for row in rows]

    @guarded
    def all_info_read(self) -> None:
        """Record that every stored song has its artist, album and title (the caller read
        those of every path `paths_without_info` gave), until a put_song without them."""
        with self._write():
            self._set_meta(_INFO_TO_READ, "0")

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

    def _rows_in(self, query: str, values: list, before: tuple = ()):
        """The rows of `query` ending in "... IN" for `values`, a list of rows per chunk of
        _SQL_CHUNK values (SQLite's limit on parameters); `before` binds the query's own
        parameters ahead of the list. Chunks without rows are left out."""
        for start in range(0, len(values), _SQL_CHUNK):
            chunk = values[start : start + _SQL_CHUNK]
            rows = self._connection.execute(f"{query} ({','.join('?' * len(chunk))})", (*before, *chunk)).fetchall()
            if rows:
                yield rows

    @guarded
    def song_infos(self) -> list[SongInfo | None]:
        """Every song's SongInfo (None: not read yet), in the order of vectors()' paths."""
        paths = self.vectors()[0]
        key = self._vector_cache[0]
        if self._info_cache is None or self._info_cache[0] != key:
            with self.snapshot():
                rows = self._connection.execute(f"SELECT path, {_READ_COLUMNS} FROM songs ORDER BY path").fetchall()
            infos = {os.fsdecode(row[0]): _info_from_row(row[1:]) for row in rows}
            self._info_cache = (key, [infos.get(path) for path in paths])
        return self._info_cache[1]

    @guarded
    def clear(self) -> None:
        """Forget every song, failure and the model, inside the caller's transaction (a
        rebuild refills the index in the same transaction, so readers keep the old songs
        until it commits, and a failed rebuild rolls back to them). The forest's record
        stays: its items no longer match any song (live_items), and the next build
        replaces it."""
        with self._write():
            self._connection.execute("DELETE FROM songs")
            self._connection.execute("DELETE FROM failures")
            self._connection.execute("DELETE FROM meta WHERE key IN ('model_id', 'tags', 'n_tags')")
            self._set_meta(_INFO_TO_READ, "0")

    @guarded
    def put_failure(self, path: str, size: int, changed_ns: int, reason: str) -> None:
        """Record that a file could not be analysed, so it is not retried until its size
        (bytes) or its change time `changed_ns` (ns, as the caller measures it) differ;
        replaces any stored song for the path."""
        key = os.fsencode(path)
        with self._write():
            self._connection.execute(
                "INSERT INTO failures (path, size, changed_ns, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "changed_ns = excluded.changed_ns, reason = excluded.reason",
                (key, int(size), int(changed_ns), _printable(reason)),
            )
            self._connection.execute("DELETE FROM songs WHERE path = ?", (key,))

    @guarded
    def remove(self, paths: Iterable[str]) -> int:
        """Forget songs and failures for these paths; returns how many rows were deleted."""
        keys = [(os.fsencode(path),) for path in paths]
        if not keys:
            return 0
        with self._write():
            removed = self._connection.executemany("DELETE FROM songs WHERE path = ?", keys).rowcount
            removed += self._connection.executemany("DELETE FROM failures WHERE path = ?", keys).rowcount
        return removed

    @guarded
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) for every file that could not be analysed, sorted by path bytes."""
        rows = self._connection.execute("SELECT path, reason FROM failures ORDER BY path").fetchall()
        return [(os.fsdecode(path), reason) for path, reason in rows]

    @guarded
    def song_count(self) -> int:
        """How many songs have a stored vector (failures not included)."""
        return self._connection.execute("SELECT count(*) FROM songs").fetchone()[0]

    # ------------------------------------------------------------------ vectors

    @guarded
    def vector_for(self, path: str, size: int | None = None, mtime_ns: int | None = None) -> np.ndarray | None:
        """The stored tag vector (float32, shape (n_tags,)) or None if the song is unknown,
        or, when size (bytes) and mtime_ns are given, if it was stored for another version."""
        row = self._connection.execute(
            "SELECT vector, size, mtime_ns FROM songs WHERE path = ?", (os.fsencode(path),)
        ).fetchone()
        if row is None or (size is not None and (row[1], row[2]) != (size, mtime_ns)):
            return None
        return np.frombuffer(row[0], dtype=VECTOR_DTYPE).astype(np.float32)

    def _vectors_from_rows(self, rows: list[tuple[bytes, bytes]]) -> np.ndarray:
        """The vectors of (path, vector) rows as float32, shape (len(rows), n_tags)."""
        n_tags = self.n_tags or 0
        joined = b"".join(row[1] for row in rows)
        if len(joined) != len(rows) * n_tags * VECTOR_DTYPE.itemsize:
            raise damaged(self.folder, "a stored vector has the wrong length")
        vectors = np.frombuffer(joined, dtype=VECTOR_DTYPE).reshape(len(rows), n_tags)
        return vectors.astype(np.float32)

    @guarded
    def vectors(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every song: (paths sorted by their bytes, vectors (n, n_tags), the same scaled to
        unit length), read-only and shared between calls."""
        # Reloading every vector per query would dominate repeated exact searches; the key
        # changes whenever this or any other connection commits a change.
        key = (self._connection.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._vector_cache is None or self._vector_cache[0] != key:
            with self.snapshot():
                rows = self._connection.execute("SELECT path, vector FROM songs ORDER BY path").fetchall()
                matrix = self._vectors_from_rows(rows)
            unit = unit_rows(matrix)
            matrix.setflags(write=False)
            unit.setflags(write=False)
            self._vector_cache = (key, [os.fsdecode(row[0]) for row in rows], matrix, unit)
        return self._vector_cache[1:]

    def _cached_vectors(self):
        """vectors()' cache when it is current (a long-lived process read every vector
        already), else None."""
        if self._vector_cache is None:
            return None
        key = (self._connection.execute("PRAGMA data_version").fetchone()[0], self._writes)
        return self._vector_cache if self._vector_cache[0] == key else None

    @guarded
    def scan(self, score) -> tuple[np.ndarray, np.ndarray]:
        """Every song scored without holding every vector: (rowids int64 (n,), `score`'s
        values (n,) or (n, k)) in path (byte) order, where score(vectors, unit_rows) takes a
        chunk of SCAN_CHUNK songs (float32 (m, n_tags), and the same at unit length).

        Reads the songs table in chunks (memory: one chunk and the scores, not the
        catalogue: 1 GB of vectors at a million songs); uses vectors()' cache instead
        when it is already loaded and current."""
        cached = self._cached_vectors()
        with self.snapshot():
            if cached is not None:
                rowids = self._rowids_in_path_order()
                return rowids, np.asarray(score(cached[2], cached[3]))
            cursor = self._connection.execute("SELECT rowid, vector FROM songs ORDER BY path")
            rowids, parts = [], []
            while rows := cursor.fetchmany(SCAN_CHUNK):
                rowids.append(np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)))
                matrix = self._vectors_from_rows(rows)
                parts.append(np.asarray(score(matrix, unit_rows(matrix))))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.asarray(score(*(np.zeros((0, self.n_tags or 0), np.float32),) * 2))
        return np.concatenate(rowids), np.concatenate(parts)

    def _rowids_in_path_order(self) -> np.ndarray:
        rows = self._connection.execute("SELECT rowid FROM songs ORDER BY path").fetchall()
        return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))

    @guarded
    def songs_by_rowid(self, rowids) -> dict[int, tuple[str, np.ndarray, SongInfo | None]]:
        """rowid -> (path, vector float32 (n_tags,), SongInfo or None) for those of `rowids`
        (from scan) still stored."""
        wanted = [int(rowid) for rowid in rowids]
        found: dict[int, tuple] = {}
        with self.snapshot():
            for rows in self._rows_in(f"SELECT rowid, vector, path, {_READ_COLUMNS} FROM songs WHERE rowid IN", wanted):
                for row, vector in zip(rows, self._vectors_from_rows(rows)):
                    found[row[0]] = (os.fsdecode(row[2]), vector, _info_from_row(row[3:]))
        return found

    @guarded
    def rowid_for(self, path: str) -> int | None:
        row = self._connection.execute("SELECT rowid FROM songs WHERE path = ?", (os.fsencode(path),)).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------ the forest's records

    @guarded
    def take_generation(self) -> int:
        """A forest generation number no other build has or will have."""
        with self._write():
            generation = int(self._meta("annoy_next_generation"))
            self._set_meta("annoy_next_generation", str(generation + 1))
        return generation

    @guarded
    def songs_for_build(self) -> tuple[int, list[bytes], np.ndarray]:
        """One snapshot of every song for a forest build: (the song revision, path bytes
        sorted, vectors float32 (n, n_tags) in the same order)."""
        with self.snapshot():
            rev = int(self._meta("song_rev"))
            rows = self._connection.execute("SELECT path, vector FROM songs ORDER BY path").fetchall()
            matrix = self._vectors_from_rows(rows)
        return rev, [row[0] for row in rows], matrix

    @guarded
    def commit_forest(self, generation: int, state: ForestState | None, keys: list[bytes]) -> bool:
        """Make `state` the committed forest (None: no forest, as there were no songs), its
        item i being the song with path bytes keys[i]. Returns False and changes nothing when
        a newer generation was committed meanwhile, since this one is of an older snapshot."""
        with self._write():
            if int(self._meta("annoy_generation") or 0) > generation:
                return False
            self._connection.execute("DELETE FROM annoy_items")
            if state is not None:
                self._connection.executemany("INSERT INTO annoy_items (item, path) VALUES (?, ?)", enumerate(keys))
            record = (
                {"size": state.size, "crc32": state.crc32, "rev": state.rev, "trees": state.trees, "count": state.count}
                if state
                else None
            )
            self._set_meta("annoy_file", state.file if state else "")
            self._set_meta("annoy", json.dumps(record) if record else "")
            self._set_meta("annoy_generation", str(generation))
        return True

    def forest_state(self) -> ForestState | None:
        """The committed forest, or None if there is none. Call it in a snapshot() with the
        reads that rely on it."""
        name = self._meta("annoy_file")
        if not name:
            return None
        try:
            return ForestState(file=name, **json.loads(self._meta("annoy")))
        except (TypeError, ValueError) as error:
            raise damaged(self.folder, f"the record of {name} is unreadable: {error}") from error

    def fresh_songs(self, rev: int) -> tuple[list[bytes], np.ndarray]:
        """Songs written after revision `rev`: (path bytes, vectors float32 (n, n_tags))."""
        rows = self._connection.execute("SELECT path, vector FROM songs WHERE rev > ?", (rev,)).fetchall()
        return [row[0] for row in rows], self._vectors_from_rows(rows)

    def live_items(self, items: list[int], rev: int) -> dict[int, bytes]:
        """item -> path bytes for the forest items whose song still has the vector it had at
        revision `rev` (removed and rewritten songs are left out)."""
        live: dict[int, bytes] = {}
        query = (
            "SELECT a.item, a.path FROM annoy_items AS a JOIN songs AS s ON s.path = a.path "
            "WHERE s.rev <= ? AND a.item IN"
        )
        for rows in self._rows_in(query, items, (rev,)):
            live.update(rows)
        return live
