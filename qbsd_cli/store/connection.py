"""The index's SQLite database opened: the connection, its schema and migrations, and the
transactions every write and consistent read goes through.

Tables: `meta` (schema version, the model, the song revision counter, the committed
forest), `songs` (path, size, mtime, duration, tag vector, revision, and what a listener
calls the song: artist, album, title, length, see songinfo), `failures` (path,
size, change time, reason) and `annoy_items` (which song each item of the committed forest
is). The songs and failures are read and written in songs.py, the forest's records in
forest_records.py.

Paths are kept as the bytes `os.fsencode` gives (BLOB columns, also in `annoy_items`), so
that file names that are not valid UTF-8 (which arrive as str with surrogate escapes)
round-trip exactly. SQLite's complaints about the file become IndexDamagedError (or
IndexBusyError when another writer holds it too long), with a message that says what to do.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeVar

from ..errors import IndexBusyError, IndexDamagedError, StoreError
from .layout import DATABASE_NAME, damaged, missing

#: How long a writer waits for another connection's write transaction before giving up.
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 4

# These mean a mistake in this package, not a damaged file, so they are not translated.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError)
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
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('info_to_read', '1')",  # INFO_TO_READ
    ],
    # Version 4 keeps each song's audio fingerprint (qbsd_cli/fingerprint.py). Older rows
    # have none (NULL) until they are analysed again: their duplicates are found by the
    # vector threshold alone.
    3: ["ALTER TABLE songs ADD COLUMN fingerprint BLOB"],
}

#: The meta key that says whether any song may lack its artist, album and title
#: (info_read = 0): "0" lets `paths_without_info` answer without reading the whole songs
#: table (its rows hold the vectors: about a gigabyte at a million songs). Absent, as in an
#: index migrated from version 2 or made before the key existed, it counts as "1".
#: (A flag, not a partial index on info_read: SQLite cannot drop a column an index names,
#: and version-2 indexes are recreated that way in the tests.)
INFO_TO_READ = "info_to_read"


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


class _InFolder(Protocol):
    @property
    def folder(self) -> Path: ...


_Self = TypeVar("_Self", bound=_InFolder)
_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def guarded(
    method: Callable[Concatenate[_Self, _Params], _Result],
) -> Callable[Concatenate[_Self, _Params], _Result]:
    """Translate SQLite's errors in a method of an object with a `folder` (see translate)."""

    @functools.wraps(method)
    def wrapper(self: _Self, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        try:
            return method(self, *args, **kwargs)
        except _BUGS:
            raise
        except sqlite3.DatabaseError as error:
            raise translate(self.folder, error) from error

    return wrapper


class Database:
    """The SQLite database of one index folder, opened: its connection, schema and
    transactions. Not thread-safe: use one instance per thread or process.

    songs.SongDatabase adds the songs, failures and the model, forest_records.ForestRecords
    the forest's records, and index_store.IndexStore the forest and the search.
    """

    def __init__(self, folder: str | Path, create: bool = True, read_only: bool = False):
        """Open the index in `folder`; with create=True make the folder and tables if needed.

        read_only=True (with create=False) opens it for reading only: queries need no write
        access, so an index on a read-only folder or medium answers them; writing through
        such an object fails.

        Raises IndexMissingError when create=False and there is no index there,
        IndexDamagedError when the database is damaged, and StoreError when it cannot be
        opened or is of a format this qbsd does not read.
        """
        self.folder: Path = Path(folder)
        folder = self.folder
        self._connection: sqlite3.Connection | None = None
        self._depth = 0  # nesting of transaction()/_write()
        self._writes = 0  # own writes: PRAGMA data_version only sees other connections'
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
                self._sql.close()
                self._connection = _connect(path, read_only=True, immutable=True)
                self._open(create)
        except BaseException:
            self.close()
            raise

    @property
    def _sql(self) -> sqlite3.Connection:
        """The open connection; after close(), SQLite's own error for a closed database."""
        if self._connection is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._connection

    @guarded
    def _open(self, create: bool) -> None:
        connection = self._sql
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
                        (INFO_TO_READ, "0"),
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

    def _upgraded_for_reading(self, version: str) -> str | None:
        """An older index opened for reading is upgraded in place by a writing connection of
        its own, where the folder allows it; on a read-only one it cannot be read."""
        try:
            Database(self.folder, create=False).close()
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
            version = int(self._required_meta("schema_version"))
            while version in _MIGRATIONS:
                for statement in _MIGRATIONS[version]:
                    self._sql.execute(statement)
                version += 1
            self._set_meta("schema_version", str(version))
        return str(version)

    def close(self) -> None:
        """Close the database; the object is unusable afterwards."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        connection = self._sql
        # IMMEDIATE takes the write lock up front, so a busy database waits here (under
        # busy_timeout) instead of failing half-way through with SQLITE_BUSY.
        connection.execute("BEGIN IMMEDIATE")
        self._depth += 1
        self._writes += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            connection.execute("ROLLBACK")
            raise
        self._depth -= 1
        try:
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent view for several reads (WAL: writers are not blocked meanwhile).

        SQLite's errors inside are not translated: use it in a guarded method."""
        if self._depth or self._sql.in_transaction:
            yield
            return
        self._sql.execute("BEGIN")
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

    # ------------------------------------------------------------------ the meta table, chunked reads

    def _meta(self, key: str) -> str | None:
        row = self._sql.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _required_meta(self, key: str) -> str:
        """The meta value every index of this schema has; IndexDamagedError when it is gone."""
        value = self._meta(key)
        if value is None:
            raise damaged(self.folder, f"its record of {key} is missing")
        return value

    def _set_meta(self, key: str, value: str) -> None:
        self._sql.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _rows_in(self, query: str, values: Sequence[object], before: tuple[object, ...] = ()) -> Iterator[list[Any]]:
        """The rows of `query` ending in "... IN" for `values`, a list of rows per chunk of
        _SQL_CHUNK values (SQLite's limit on parameters); `before` binds the query's own
        parameters ahead of the list. Chunks without rows are left out."""
        for start in range(0, len(values), _SQL_CHUNK):
            chunk = values[start : start + _SQL_CHUNK]
            rows = self._sql.execute(f"{query} ({','.join('?' * len(chunk))})", (*before, *chunk)).fetchall()
            if rows:
                yield rows
