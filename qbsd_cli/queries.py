"""Query resolution: the songs a query names, as ranking.Seed (vector, path, names).

A query song is a file or a `qbsd tag --vector` record (api.TagResult). A file the index
holds unchanged (same size and modification time) uses its stored vector and names, one
indexed look-up each; any other file is checked (a regular file only), analysed with the
index's model and read for its names. Vectors of another model than the index's are
refused (ModelMismatchError), as are vectors of the wrong length or with values that are
not numbers (UsageError).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError, UsageError
from .model import loaded_model, model_for_index
from .ranking import Seed
from .results import TagResult
from .settings import max_segments
from .songinfo import SongInfo, from_folders, read_song_info

if TYPE_CHECKING:
    from .store import IndexStore

#: What a query song may be: a file's path, or a TagResult (from `tag`, or a `qbsd tag
#: --vector` line).
QuerySong = str | os.PathLike | TagResult


def query_vector(
    store: IndexStore, query: QuerySong, model: str | os.PathLike | None = None, full: bool = False
) -> tuple[np.ndarray, str | None]:
    """(vector, absolute path to leave out of the results) of one query song: a TagResult,
    or an audio file, whose stored vector is used when the index holds it unchanged;
    otherwise it is analysed with `model` (default: the index's own)."""
    vector, exclude, _fingerprint = _resolved(store, query, model, full)
    return vector, exclude


def _resolved(
    store: IndexStore, query: QuerySong, model: str | os.PathLike | None, full: bool
) -> tuple[np.ndarray, str | None, bytes | None]:
    """query_vector's (vector, path) and the song's audio fingerprint when it came with the
    query (a record's) or with its analysis (None for a song read from the index, whose
    stored fingerprint comes with its names)."""
    fingerprint = None
    if isinstance(query, TagResult):
        fingerprint = query.fingerprint
        store.require_model(query.model_id, "the query vector")
        vector = np.asarray(query.vector, dtype=np.float32)
        exclude = os.path.abspath(query.path) if query.path else None
    else:
        path = os.fsdecode(query)
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file")
        exclude = os.path.abspath(path)
        info = os.stat(exclude)
        # one indexed lookup: reading every stored path cost 0.24 s at 100k songs
        stored = store.vector_for(exclude, info.st_size, info.st_mtime_ns)
        if stored is not None:
            vector = stored
        else:
            tag_model = loaded_model(model_for_index(model, store.model_id))
            store.require_model(tag_model.model_id, "the model in use")
            try:
                song = tag_model.analyse(path, max_segments(full))
            except AudioError as bad:  # the reason alone would not say which file
                raise type(bad)(f"{path}: {bad}") from None
            vector, fingerprint = song.vector, song.fingerprint
    if len(vector) != store.n_tags:
        raise UsageError(f"query vector has {len(vector)} values, the index has {store.n_tags} tags")
    if not np.all(np.isfinite(vector)):
        raise UsageError("the query vector has values that are not numbers (NaN or infinity)")
    return vector, exclude, fingerprint


def seed(store: IndexStore, query: QuerySong, model: str | os.PathLike | None, full: bool) -> Seed:
    """The Seed of one query song: its vector and path (query_vector) and its names, from
    the index when it holds the song, else from the file's tags and name (with the audio
    fingerprint of its analysis, so that its re-encodes in the index are left out too)."""
    vector, path, fingerprint = _resolved(store, query, model, full)
    info = None
    if path is not None:
        stored = store.songs_for([path]).get(path)
        if stored is not None:
            info = stored[1]
        elif os.path.exists(path):
            info = read_song_info(path)
        else:
            info = from_folders(path, None)
    if fingerprint is not None and (info is None or info.fingerprint is None):
        info = dataclasses.replace(info or SongInfo(), fingerprint=fingerprint)
    return Seed(np.asarray(vector, dtype=np.float32), path, info)


def seeds(
    store: IndexStore, queries: QuerySong | Iterable[QuerySong], model: str | os.PathLike | None, full: bool
) -> list[Seed]:
    """The Seeds of one query song or several, in order."""
    if isinstance(queries, (str, bytes, os.PathLike, TagResult)):
        queries = [queries]
    return [seed(store, query, model, full) for query in queries]
