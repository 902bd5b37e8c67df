"""qbsd from Python: tag files, keep an index, query it by example or by words.

    import qbsd_cli as qbsd

    result = qbsd.tag("song.mp3")                 # TagResult
    print(result.top(5))                          # [("mood:calm", 0.61), ...]
    for item in qbsd.tag_many(paths, jobs=2):     # TagResult or Failure, in input order
        ...
    with qbsd.Index.open() as index:              # ~/.local/share/qbsd, or a folder
        summary = index.update(["~/Music"])       # IndexSummary
        index.similar("song.mp3", top=10)         # [Match(rank, path, score, artist, ...), ...]
        index.similar(["a.mp3", "b.flac"], avoid=["c.mp3"], tags=["calm"], per_artist=1)
        index.search(["calm", "jazz"], top=10, like=["a.mp3"])
        index.path("a.mp3", "b.mp3", steps=12)    # a playlist from a to b
        index.duplicates()                        # [[Match, ...], ...]: one recording each

Errors are `errors.QbsdError` subclasses with one-line messages. Vectors are float32
arrays of shape (n_tags,), in the model's vocabulary order, values in 0..1. Paths are
returned as given (absolute for indexed songs); undecodable bytes of a file name are
kept as surrogate escapes, as `os.fsdecode` gives them.

For the best throughput, set OPENBLAS_NUM_THREADS=1 before numpy is first imported:
qbsd parallelises with worker processes, one core each (the command line does this).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import IndexMissingError, UsageError
from .indexing import FolderUpdate, IndexSummary, Reporter, ingest_lines, update_index
from .model import duplicate_threshold
from .queries import QuerySong, query_vector, seed, seeds
from .ranking import ListRules, Query, Ranked, Reason, Seed, best, walk
from .ranking import duplicates as duplicate_songs
from .results import Failure, Match, TagResult
from .settings import DEFAULT_TIMEOUT, AnalysisSettings, default_index_folder, default_jobs
from .songinfo import SongInfo
from .tagging import TagRun, paths_of, tag, tag_many
from .vocabulary import resolve_words

if TYPE_CHECKING:  # the store (sqlite3, annoy) is imported when an index is used, not by tag()
    from .clusters import Cluster
    from .mapping import MapLayout
    from .store import IndexStore

__all__ = [
    "Failure",
    "Index",
    "IndexSummary",
    "Match",
    "Reason",
    "Reporter",
    "TagResult",
    "TagRun",
    "tag",
    "tag_many",
]


class Index:
    """An index folder (`store`): a facade over writing (`indexing`, one writer at a time),
    query resolution (`queries`) and retrieval (`ranking`, read-only until `close()`)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder).expanduser() if folder else default_index_folder()
        self._store: IndexStore | None = None

    @classmethod
    def open(cls, folder: str | os.PathLike | None = None) -> Index:
        """The index in `folder` (default: $QBSD_INDEX, else ~/.local/share/qbsd); read on use."""
        return cls(folder)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def update(
        self,
        folders: Iterable[str | os.PathLike],
        *,
        model: str | os.PathLike | None = None,
        jobs: int = 0,
        full: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        rebuild: bool = False,
        reporter: Reporter | None = None,
        keep_worker_stderr: bool = False,
        cluster: str | None = None,
    ) -> IndexSummary:
        """Analyse new and changed files under `folders`, forget deleted ones, rebuild the
        forest (indexing.update_index; rebuild=True: afresh). Bad files are failures
        (`failures()`, `reporter`); errors are QbsdError subclasses."""
        self.close()  # a reader's cached snapshot would be stale after the update
        settings = AnalysisSettings.of(full, timeout, keep_worker_stderr)
        update = FolderUpdate(paths_of(folders), model, settings, jobs or default_jobs(), cluster, rebuild)
        return update_index(self.folder, update, reporter)

    def ingest(
        self,
        lines: Iterable[str] | Iterable[bytes],
        source: str = "stdin",
        *,
        model: str | os.PathLike | None = None,
        rebuild: bool = False,
        reporter: Reporter | None = None,
    ) -> IndexSummary:
        """Store the songs of `qbsd tag --vector` lines (indexing.ingest_lines); `source`
        names them in messages (`SOURCE:LINE: reason`)."""
        self.close()
        return ingest_lines(self.folder, lines, source, model, rebuild, reporter)

    # ------------------------------------------------------------------ reading

    def _reader(self, need_songs: bool = True) -> IndexStore:
        if self._store is None:
            from .store import IndexStore

            self._store = IndexStore(self.folder, create=False, read_only=True)
        if need_songs and (self._store.model_id is None or self._store.song_count() == 0):
            raise IndexMissingError(f"the index at {self.folder} holds no songs yet: run `qbsd index DIR` first")
        return self._store

    @property
    def model_id(self) -> str | None:
        """The model the index's vectors come from (None while it is empty)."""
        return self._reader(need_songs=False).model_id

    @property
    def tags(self) -> list[str] | None:
        """The vocabulary of the index's model, in vector order."""
        return self._reader(need_songs=False).tags

    def song_count(self) -> int:
        return self._reader(need_songs=False).song_count()

    def failures(self) -> list[Failure]:
        """The files that could not be analysed, with their reasons, sorted by path bytes."""
        return [Failure(path, reason) for path, reason in self._reader(need_songs=False).failures()]

    def query_vector(
        self, query: QuerySong, *, model: str | None = None, full: bool = False
    ) -> tuple[np.ndarray, str | None]:
        """(vector, path to leave out of results) of a query song (queries.query_vector)."""
        return query_vector(self._reader(), query, model, full)

    def similar(
        self,
        query: QuerySong | Iterable[QuerySong],
        top: int = 10,
        *,
        avoid: Iterable[QuerySong] = (),
        tags: Iterable[str] = (),
        per_artist: int = 0,
        per_album: int = 0,
        keep_duplicates: bool = False,
        explain: bool = False,
        include_self: bool = False,
        exact: bool = False,
        model: str | os.PathLike | None = None,
        full: bool = False,
    ) -> list[Match]:
        """The `top` songs most like `query` (files or TagResults), away from `avoid`, towards
        the words `tags` (ranking.best has the rules: seeds and duplicates left out, caps,
        ties by path). Raises UsageError, AudioError, ModelMismatchError or StoreError."""
        store = self._reader()
        found = seeds(store, query, model, full)
        if not found:
            raise UsageError("give at least one song to query with")
        avoided = seeds(store, avoid, model, full)
        words = [tags] if isinstance(tags, str) else list(tags)
        columns = resolve_words(words, store.tags or []) if words else []
        rules = _list_rules(store, top, per_artist, per_album, keep_duplicates, explain)
        rules = dataclasses.replace(rules, exact=exact, include_self=include_self)
        ranked = best(store, _query(found, avoided, columns), found, avoided, rules)
        return _matches(ranked)

    def search(
        self,
        words: str | Iterable[str],
        top: int = 10,
        *,
        like: Iterable[QuerySong] = (),
        avoid: Iterable[QuerySong] = (),
        per_artist: int = 0,
        per_album: int = 0,
        keep_duplicates: bool = False,
        explain: bool = False,
        model: str | os.PathLike | None = None,
        full: bool = False,
    ) -> list[Match]:
        """The `top` songs that best fit the words (mean of the named tags' scores); with
        `like`, similar(like, tags=words). Raises UnknownTagError or IndexMissingError."""
        store = self._reader()
        words = words.split() if isinstance(words, str) else list(words)
        columns = resolve_words(words, store.tags or [])
        if not columns:
            raise UsageError("no tag named: give at least one word")
        found, avoided = seeds(store, like, model, full), seeds(store, avoid, model, full)
        rules = _list_rules(store, top, per_artist, per_album, keep_duplicates, explain)
        return _matches(best(store, _query(found, avoided, columns), found, avoided, rules))

    def path(
        self,
        start: QuerySong,
        end: QuerySong,
        steps: int = 12,
        *,
        per_artist: int = 0,
        per_album: int = 0,
        keep_duplicates: bool = False,
        explain: bool = False,
        model: str | os.PathLike | None = None,
        full: bool = False,
    ) -> list[Match]:
        """`steps` songs from `start` to `end`, both included (ranking.walk); raises
        UsageError (too few or many steps, one song at both ends) or AudioError."""
        if steps < 2:
            raise UsageError(f"--steps {steps}: a path needs at least 2 songs, its start and its end")
        store = self._reader()
        a, b = seed(store, start, model, full), seed(store, end, model, full)
        if (a.path is not None and a.path == b.path) or np.array_equal(a.vector, b.vector):
            raise UsageError("a path needs two different songs: its start and its end are the same song")
        # two indexed look-ups rather than a set of every path
        ends = {path for path in (a.path, b.path) if path is not None}
        ends_indexed = sum(store.vector_for(end_path) is not None for end_path in ends)
        between = store.song_count() - ends_indexed
        if steps - 2 > between:
            raise UsageError(
                f"--steps {steps}: the index holds {between} songs besides the two ends, "
                f"so a path has at most {between + 2} steps"
            )
        rules = _list_rules(store, steps, per_artist, per_album, keep_duplicates, explain)
        return _matches(walk(store, a, b, steps, rules))

    def map(self) -> MapLayout:
        """Every song placed on the mood plane and on a map of its tags (mapping.layout)."""
        from .mapping import layout

        return layout(self._reader())

    def cluster(self, count: int, *, min_size: int = 1, max_size: int = 0, per_artist: int = 0) -> list[Cluster]:
        """The library as at most `count` named playlists (clusters.cluster_library)."""
        from .clusters import ClusterRules, cluster_library

        return cluster_library(self._reader(), ClusterRules(count, min_size, max_size, per_artist))

    def duplicates(self) -> list[list[Match]]:
        """The groups of songs that are one recording (ranking.same_recording), each sorted
        by path with the cosine to its first song as score; every pair is compared (n²)."""
        store = self._reader()
        groups = duplicate_songs(store, duplicate_threshold(store.model_id))
        return [_matches([Ranked(path, score, None, info) for path, score, info in group]) for group in groups]


def _query(found: list[Seed], avoided: list[Seed], columns: list[int]) -> Query:
    return Query([song.vector for song in found], [song.vector for song in avoided], columns)


def _list_rules(
    store: IndexStore, count: int, per_artist: int, per_album: int, keep_duplicates: bool, explain: bool
) -> ListRules:
    if count < 1:
        raise UsageError(f"--top {count}: ask for at least 1 song")
    if per_artist < 0 or per_album < 0:
        raise UsageError("--per-artist and --per-album take a count of at least 1 (0: no cap)")
    return ListRules(count, duplicate_threshold(store.model_id), per_artist, per_album, keep_duplicates, explain)


def _matches(ranked: list[Ranked]) -> list[Match]:
    matches = []
    for rank, song in enumerate(ranked, 1):
        info = song.info or SongInfo()
        names = (info.artist, info.album, info.title, info.seconds)
        matches.append(Match(rank, song.path, float(song.score), *names, song.because))
    return matches
