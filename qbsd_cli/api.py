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
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import IndexMissingError, UsageError
from .indexing import FolderUpdate, IndexSummary, Reporter, ingest_lines, update_index
from .model import ModelInfo, loaded_model
from .pools import AnalysisPoolLike, open_pool
from .queries import QuerySong, query_vector, seed, seeds
from .ranking import ListRules, Query, Ranked, Reason, Seed, best, duplicate_threshold, walk
from .ranking import duplicates as duplicate_songs
from .results import Failure, Match, TagResult
from .settings import DEFAULT_TIMEOUT, AnalysisSettings, cluster_address, default_index_folder, default_jobs
from .songinfo import SongInfo, read_tags
from .vocabulary import resolve_words

if TYPE_CHECKING:  # the store (sqlite3, annoy) is imported when an index is used, not by tag()
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


def _paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Paths as str (bytes decoded as os.fsdecode does); one path alone is a list of one."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    return [os.fsdecode(path) for path in paths]


def tag(path: str | os.PathLike, *, model: str | os.PathLike | None = None, full: bool = False) -> TagResult:
    """Analyse one file in this process (at most 4 evenly spread 30 s segments, or all of
    it with full=True). Raises AudioError (TooShortError for a file too short for the model) or
    ModelError."""
    tag_model = loaded_model(model)
    path = os.fsdecode(path)
    song = tag_model.analyse(path, AnalysisSettings.of(full).max_segments)
    return TagResult(
        path, song.duration, tag_model.model_id, tuple(tag_model.tags), song.vector, read_tags(path), song.fingerprint
    )


def tag_many(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    jobs: int = 0,
    full: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
    keep_worker_stderr: bool = False,
    cluster: str | None = None,
) -> TagRun:
    """Analyse files in `jobs` worker processes (0: one per core), or on the workers of
    the Dask scheduler at `cluster` (`tcp://host:8786`, else $QBSD_CLUSTER; needs the
    cluster extra), each file within `timeout` seconds (None or 0: no limit); the workers'
    stderr (decoders' notes on damaged files) is discarded unless keep_worker_stderr.
    Returns a TagRun: iterate it for a TagResult or a Failure per path, in input order (a
    bad file is a Failure, never an exception). ModelError is raised by this call itself,
    and the workers start here, before any thread the caller starts next (a progress
    bar's, say); so is ClusterError (or ModelMismatchError, when the workers have another
    model)."""
    paths = _paths(paths)
    info = ModelInfo.read(model)
    settings = AnalysisSettings.of(full, timeout, keep_worker_stderr)
    address = cluster_address(cluster)
    pool = None
    if paths and address:
        from .cluster import Cluster

        connection = Cluster(address)
        try:
            connection.check_model(info)
        except BaseException:
            connection.close()
            raise
        pool = open_pool(info, settings, 0, connection, owns_cluster=True)
    elif paths:
        pool = open_pool(info, settings, min(jobs or default_jobs(), len(paths)))
    return TagRun(pool, paths, info)


class TagRun:
    """The results of `tag_many`, and the worker processes that make them. Use it as a
    context manager, or iterate it to the end: either way the workers end with it, and
    `close()` ends them early (they are killed when it is dropped unfinished, too)."""

    def __init__(self, pool: AnalysisPoolLike | None, paths: list[str], info: ModelInfo):
        self._pool = pool
        self._info = info
        self._tags = tuple(info.tags)
        self._analyses = pool.analyse(paths) if pool else iter(())
        # a run dropped without close() must not leave its workers behind
        self._finalizer = weakref.finalize(self, pool.close, True) if pool else None

    def __iter__(self) -> TagRun:
        return self

    def __next__(self) -> TagResult | Failure:
        try:
            analysis = next(self._analyses)
        except StopIteration:
            self.close(kill=False)
            raise
        except BaseException:  # Ctrl-C or an error in the pool: the busy workers are killed
            self.close()
            raise
        if analysis.error:
            return Failure(analysis.path, analysis.error)
        return TagResult(
            analysis.path,
            analysis.duration,
            self._info.model_id,
            self._tags,
            analysis.vector,
            analysis.tags or read_tags(analysis.path),  # the analysis process read them
            analysis.fingerprint,
        )

    def close(self, kill: bool = True) -> None:
        """End the workers (kill=False: let idle ones exit on their own)."""
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer.detach()
            self._pool.close(kill=kill)

    def __enter__(self) -> TagRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: object, traceback: object) -> None:
        self.close(kill=kind is not None)


class Index:
    """An index folder: SQLite song vectors plus an Annoy forest (see `store`); a facade over
    writing (`indexing`), query resolution (`queries`) and retrieval (`ranking`).

    Queries open the folder's database read-only on first use and keep it open until
    `close()`; `update` and `ingest` take the folder's writer lock for their whole run (a
    second writer gets IndexBusyError), while queries keep answering from what is committed.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder).expanduser() if folder else default_index_folder()
        self._store: IndexStore | None = None

    @classmethod
    def open(cls, folder: str | os.PathLike | None = None) -> Index:
        """The index in `folder` (default: $QBSD_INDEX, else ~/.local/share/qbsd). Nothing
        is read until it is used, so this never fails."""
        return cls(folder)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

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
        """Analyse new and changed audio files under `folders` (on the workers of the Dask
        scheduler at `cluster` when given), forget deleted ones, and rebuild the Annoy
        forest (indexing.update_index). rebuild=True starts the index afresh (after a model
        change, or damage), keeping the old songs until the new ones are committed. Raises
        UsageError (a missing folder), ModelError, ModelMismatchError, ClusterError,
        IndexBusyError or IndexDamagedError; bad files are recorded as failures
        (`failures()`), reported to `reporter`, and never raised."""
        self.close()  # a reader's cached snapshot would be stale after the update
        settings = AnalysisSettings.of(full, timeout, keep_worker_stderr)
        update = FolderUpdate(_paths(folders), model, settings, jobs or default_jobs(), cluster, rebuild)
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
        """Store the songs of `qbsd tag --vector` JSON lines (indexing.ingest_lines,
        records.parse); `source` names the lines in messages (`SOURCE:LINE: reason`). With
        rebuild=True the old songs stay whole, and readers keep them, unless the lines
        store at least one song."""
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
        self, query: QuerySong, *, model: str | os.PathLike | None = None, full: bool = False
    ) -> tuple[np.ndarray, str | None]:
        """(vector, path to leave out of the results) for a query (queries.query_vector): a
        TagResult, or an audio file, whose stored vector is used when the index holds it
        unchanged; otherwise it is analysed with `model`."""
        return query_vector(self._reader(), query, model, full)

    def _rules(self, count: int, per_artist: int, per_album: int, keep_duplicates: bool, explain: bool) -> ListRules:
        if count < 1:
            raise UsageError(f"--top {count}: ask for at least 1 song")
        if per_artist < 0 or per_album < 0:
            raise UsageError("--per-artist and --per-album take a count of at least 1 (0: no cap)")
        threshold = duplicate_threshold(self._reader().model_id)
        return ListRules(count, threshold, per_artist, per_album, keep_duplicates, explain)

    @staticmethod
    def _matches(ranked: list[Ranked]) -> list[Match]:
        matches = []
        for rank, song in enumerate(ranked, 1):
            info = song.info or SongInfo()
            names = (info.artist, info.album, info.title, info.seconds)
            matches.append(Match(rank, song.path, float(song.score), *names, song.because))
        return matches

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
        """The `top` songs most like `query` (one song or several, each a file or a
        TagResult), best first: cosine similarity of tag vectors to the seeds' mean
        direction, pushed away from the songs `avoid`, and towards the tags the words
        `tags` name (resolved as `search` resolves words; see ranking for the weights).
        Seeds, counter-examples and their duplicates are left out (the seeds are kept with
        include_self), and so are duplicates of songs already listed unless keep_duplicates;
        per_artist / per_album > 0 cap the songs of one artist / album. explain=True fills
        each Match's `because`. exact=True scans every song instead of searching the Annoy
        forest. Equal scores are ordered by path, so a query always gives the same list.
        Raises UsageError, AudioError, ModelMismatchError, IndexMissingError or
        IndexDamagedError."""
        store = self._reader()
        found = seeds(store, query, model, full)
        if not found:
            raise UsageError("give at least one song to query with")
        avoided = seeds(store, avoid, model, full)
        words = [tags] if isinstance(tags, str) else list(tags)
        columns = resolve_words(words, store.tags) if words else []
        rules = self._rules(top, per_artist, per_album, keep_duplicates, explain)
        rules = dataclasses.replace(rules, exact=exact, include_self=include_self)
        ranked = best(store, _query(found, avoided, columns), found, avoided, rules)
        return self._matches(ranked)

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
        """The `top` songs that best fit a description (the mean of their scores for the
        tags the words name, see vocabulary.resolve_words), best first; with `like` songs,
        the same query as similar(like, tags=words). Filters and explain as for similar
        (the reasons of a words-only search are the named tags' scores). Raises
        UnknownTagError (with suggestions) or IndexMissingError."""
        store = self._reader()
        words = words.split() if isinstance(words, str) else list(words)
        columns = resolve_words(words, store.tags)
        if not columns:
            raise UsageError("no tag named: give at least one word")
        found, avoided = seeds(store, like, model, full), seeds(store, avoid, model, full)
        rules = self._rules(top, per_artist, per_album, keep_duplicates, explain)
        return self._matches(best(store, _query(found, avoided, columns), found, avoided, rules))

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
        """A playlist of `steps` songs from `start` to `end` (both included, first and
        last; ranking.walk): step i is the song nearest by cosine to the point i/(steps-1)
        of the way between the two songs' directions, chosen greedily in order, never a
        song twice nor a duplicate of one listed (unless keep_duplicates), within the
        per_artist / per_album caps. Each Match's score is its cosine to its step's point.
        Fewer songs come back only when duplicates (unless keep_duplicates) and the caps
        leave too few. Raises UsageError for fewer than 2 steps, the same song at both
        ends, or more steps than the index has songs; AudioError for an end that cannot be
        decoded."""
        if steps < 2:
            raise UsageError(f"--steps {steps}: a path needs at least 2 songs, its start and its end")
        store = self._reader()
        a, b = seed(store, start, model, full), seed(store, end, model, full)
        if (a.path is not None and a.path == b.path) or np.array_equal(a.vector, b.vector):
            raise UsageError("a path needs two different songs: its start and its end are the same song")
        # two indexed look-ups rather than a set of every path
        ends_indexed = sum(store.vector_for(end_path) is not None for end_path in {a.path, b.path} - {None})
        between = store.song_count() - ends_indexed
        if steps - 2 > between:
            raise UsageError(
                f"--steps {steps}: the index holds {between} songs besides the two ends, "
                f"so a path has at most {between + 2} steps"
            )
        rules = self._rules(steps, per_artist, per_album, keep_duplicates, explain)
        return self._matches(walk(store, a, b, steps, rules))

    def duplicates(self) -> list[list[Match]]:
        """The groups of songs in the index that are one recording (ranking.same_recording:
        vector cosine at least the model's duplicate threshold, or audio fingerprints that
        agree for a candidate pair): each a list of Match sorted by path, `score` being the
        cosine to the group's first song; groups by their first path. Compares every pair
        (n² cosines; not timed on big indexes)."""
        store = self._reader()
        groups = duplicate_songs(store, duplicate_threshold(store.model_id))
        return [self._matches([Ranked(path, score, None, info) for path, score, info in group]) for group in groups]


def _query(found: list[Seed], avoided: list[Seed], columns: list[int]) -> Query:
    return Query([song.vector for song in found], [song.vector for song in avoided], columns)
