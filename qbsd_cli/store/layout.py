"""The index folder's layout: what its files are called, and the errors that name the folder.

songs.sqlite (+ -wal, -shm)   the database: songs, failures, metadata (the source of truth)
songs-<generation>.annoy      the current Annoy forest (at most one is committed)
songs-<generation>.annoy.tmp  a forest being written (or left by a killed build)
lock                          the writer lock, `flock`ed by whoever writes the index
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IndexDamagedError, IndexMissingError, StoreError

DATABASE_NAME = "songs.sqlite"
#: Files SQLite keeps beside the database: the write-ahead log, its shared-memory index,
#: and the rollback journal of a database that was never switched to WAL.
DATABASE_COMPANIONS = ("-wal", "-shm", "-journal")
LOCK_NAME = "lock"
ANNOY_PREFIX = "songs-"
ANNOY_SUFFIX = ".annoy"
TEMPORARY_SUFFIX = ".tmp"


def annoy_name(generation: int) -> str:
    """The finished forest file of a generation: songs-<generation>.annoy."""
    return f"{ANNOY_PREFIX}{generation}{ANNOY_SUFFIX}"


def annoy_files(folder: Path) -> list[tuple[int, Path]]:
    """(generation, path) for every finished or temporary Annoy file in `folder`."""
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.startswith(ANNOY_PREFIX):
            continue
        stem = name[len(ANNOY_PREFIX) :]
        for suffix in (ANNOY_SUFFIX + TEMPORARY_SUFFIX, ANNOY_SUFFIX):
            if stem.endswith(suffix) and stem[: -len(suffix)].isdigit():
                found.append((int(stem[: -len(suffix)]), entry))
                break
    return found


def reset(folder: Path) -> None:
    """Delete the database (with its companions) and every Annoy file, finished or temporary.

    The lock stays: the caller holds it while the index is deleted and made again.
    A folder that does not exist has nothing to delete.
    """
    if not folder.is_dir():
        return
    try:
        doomed = [folder / (DATABASE_NAME + companion) for companion in ("", *DATABASE_COMPANIONS)]
        doomed += [path for _generation, path in annoy_files(folder) if not path.is_dir()]
        for path in doomed:
            path.unlink(missing_ok=True)
    except OSError as error:
        raise StoreError(f"cannot reset the index at {folder}: {error}") from error


def missing(folder: Path) -> IndexMissingError:
    """There is no index in `folder`."""
    return IndexMissingError(f"no index at {folder}: run `qbsd index DIR` first")


def damaged(folder: Path, detail: str) -> IndexDamagedError:
    """The index in `folder` is damaged; `detail` says how (SQLite's message, a bad checksum)."""
    return IndexDamagedError(
        f"the index at {folder} is damaged ({detail}): rebuild it with "
        f"`qbsd index --rebuild DIR` (DIR: your music folders), or delete the folder "
        f"{folder} and run `qbsd index DIR` again"
    )
