"""The Annoy forest's life on disk: writing a generation, loading it with checks, and
deleting the generations nobody can use any more.

The database records which generation is current (a ForestState, committed in one
transaction with the item -> path table); this module only handles the files. Each build
takes a new generation number, writes `songs-<generation>.annoy.tmp`, makes it durable and
renames it to `songs-<generation>.annoy`, so a file under a finished name is always
complete, and a kill at any moment leaves the last committed forest usable.
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from annoy import AnnoyIndex

from ..errors import StoreError
from .layout import TEMPORARY_SUFFIX, annoy_files, annoy_name, damaged

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
_READ_CHUNK = 1 << 22  # bytes


@dataclass(frozen=True)
class ForestState:
    """A finished forest as the database records it.

    `file` is its name in the index folder, `size` its length in bytes and `crc32` its
    checksum; `rev` is the song revision it was built at (songs written later, with a higher
    rev, are not in it or are there with an old vector); `trees` is its tree count and
    `count` its number of items, one per song at build time.
    """

    file: str
    size: int
    crc32: int
    rev: int
    trees: int
    count: int

    def search_k(self, wanted: int) -> int:
        """How many candidates Annoy examines to find `wanted` neighbours."""
        return SEARCH_K_FACTOR * self.trees * max(wanted, MIN_SEARCH_COUNT)


def _crc32(stream: BinaryIO) -> int:
    """The crc32 of an open file from its current position to its end."""
    checksum = 0
    while chunk := stream.read(_READ_CHUNK):
        checksum = zlib.crc32(chunk, checksum)
    return checksum


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: its directory entry reaches the disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Forest:
    """The Annoy files of one index folder, and the forest loaded from the current one."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._loaded: tuple[str, AnnoyIndex] | None = None  # (file name, its loaded forest)

    def write(self, generation: int, matrix: np.ndarray, n_trees: int, rev: int) -> ForestState:
        """Build a forest (angular metric, `n_trees` trees) over the rows of `matrix`
        (float32, shape (n, n_tags); item i is row i) and store it durably as the file of
        `generation`. `rev` is the song revision the rows were read at."""
        final = self.folder / annoy_name(generation)
        temporary = final.with_name(final.name + TEMPORARY_SUFFIX)
        for path in (final, temporary):
            if path.exists() and not path.is_file():  # something of a user's, or a tool's, in the way
                raise StoreError(f"cannot write the search index: {path} is in the way (not a file): move it away")
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
        with open(temporary, "rb") as stream:
            checksum = _crc32(stream)
            # The rename must not reach the disk before the contents do.
            os.fsync(stream.fileno())
        size = temporary.stat().st_size
        os.replace(temporary, final)
        _fsync_folder(self.folder)
        return ForestState(file=final.name, size=size, crc32=checksum, rev=rev, trees=n_trees, count=len(matrix))

    def load(self, state: ForestState, n_tags: int) -> AnnoyIndex:
        """The forest of `state`, loaded (memory-mapped) once and kept for later queries.

        Raises FileNotFoundError when the file is gone (a concurrent rebuild replaced it:
        the caller reads the state again), and IndexDamagedError when it is not the file
        the state describes.
        """
        if self._loaded is not None and self._loaded[0] == state.file:
            return self._loaded[1]
        path = self.folder / state.file
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise damaged(self.folder, f"{path.name} is not a file")
        size = info.st_size
        if size != state.size:
            raise damaged(self.folder, f"{path.name} has {size} bytes instead of {state.size}")
        # Annoy follows child offsets in the file blindly, so garbage could crash the
        # process; a checksum (~25 ms per 100 MB) rules that out before loading.
        with open(path, "rb") as stream:
            if _crc32(stream) != state.crc32:
                raise damaged(self.folder, f"{path.name} fails its checksum")
        index = AnnoyIndex(n_tags, "angular")
        try:
            index.load(str(path))
        except OSError as error:
            raise damaged(self.folder, f"{path.name}: {error}") from error
        if index.get_n_items() != state.count:
            raise damaged(self.folder, f"{path.name} holds {index.get_n_items()} songs instead of {state.count}")
        self._loaded = (state.file, index)
        return index

    def discard(self, generation: int) -> None:
        """Delete the finished file of a build that was never committed."""
        (self.folder / annoy_name(generation)).unlink(missing_ok=True)

    def collect_garbage(self, committed: int) -> None:
        """After generation `committed` was committed: delete the files of older generations.

        They can no longer be committed, so their files (finished, or left half-written by a
        killed build) are garbage. Newer ones belong to a build in flight and stay.
        """
        for generation, path in annoy_files(self.folder):
            if generation < committed and not path.is_dir():  # a folder is not ours to delete
                path.unlink(missing_ok=True)

    def unload(self) -> None:
        """Forget the loaded forest (and unmap it once no search uses it any more)."""
        self._loaded = None
