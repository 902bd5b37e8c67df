"""The index's writer lock: one process at a time changes an index folder.

Readers (`qbsd similar`, `qbsd search`) never take it; SQLite's WAL lets them read while a
writer works, and the Annoy file is replaced by an atomic rename.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexBusyError, StoreError
from .layout import LOCK_NAME


@contextmanager
def writer_lock(folder: str | Path, wait: bool = True) -> Iterator[None]:
    """Hold the exclusive writer lock (`flock` on `folder/lock`) for the block.

    Makes the folder if needed. wait=True blocks until the other writer is done; wait=False
    raises IndexBusyError at once, with the one wording of a busy index. Two opens of the lock
    exclude each other even within one process. The kernel releases the lock when the
    process dies, so it never goes stale; O_CLOEXEC keeps programs it executes from
    holding it on. Raises StoreError when the lock file cannot be opened.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise StoreError(
                f"the index at {folder} is read-only ({error.strerror}): changing it needs write access to the "
                f"folder; similar, search and path still answer from it"
            ) from None
        raise StoreError(f"cannot open the index at {folder}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise IndexBusyError(
                f"another `qbsd index` is running on the index at {folder}; try again when it has finished"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
