"""The song index on disk: tag vectors in SQLite, plus an Annoy forest for fast similarity.

A folder holds `songs.sqlite` (songs, failures, metadata), at most one finished Annoy file
`songs-<generation>.annoy`, and the writer lock `lock` (see `layout`). SQLite is the source
of truth; the Annoy file is a derived, replaceable acceleration structure, and `nearest`
stays correct when it is stale (songs added, changed or removed since it was built) or
missing.

    layout          what the folder's files are called; reset; the errors that name the folder
    lock            writer_lock: one writer at a time
    connection      Database: the SQLite connection, schema and migrations, opening read-only,
                    transactions and snapshots, SQLite's errors translated (guarded)
    songs           SongDatabase(Database): the model, songs, failures and their vectors
    forest_records  ForestRecords(SongDatabase): the committed forest and its items' songs
    forest          Forest: the Annoy files' life (write durably, load with checks, collect)
    index_store     IndexStore(ForestRecords): the public face, with the forest's files, the
                    writer lock, the search merging forest and fresh songs, rebuild_annoy

Each layer adds its job's methods to the one below, so every method of IndexStore is
written once, where its job is.
"""

from ..errors import IndexBusyError, IndexDamagedError, IndexMissingError, ModelMismatchError, StoreError
from .connection import BUSY_TIMEOUT_S, SCHEMA_VERSION
from .forest import ANNOY_SEED, ANNOY_TREES, MIN_SEARCH_COUNT, SEARCH_K_FACTOR
from .index_store import IndexStore
from .layout import ANNOY_PREFIX, ANNOY_SUFFIX, DATABASE_NAME, LOCK_NAME, TEMPORARY_SUFFIX
from .lock import writer_lock
from .songs import FileState

__all__ = [
    "ANNOY_PREFIX",
    "ANNOY_SEED",
    "ANNOY_SUFFIX",
    "ANNOY_TREES",
    "BUSY_TIMEOUT_S",
    "DATABASE_NAME",
    "LOCK_NAME",
    "MIN_SEARCH_COUNT",
    "SCHEMA_VERSION",
    "SEARCH_K_FACTOR",
    "TEMPORARY_SUFFIX",
    "FileState",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexMissingError",
    "IndexStore",
    "ModelMismatchError",
    "StoreError",
    "writer_lock",
]
