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

import functools
import os
import weakref
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .analysis import AnalysisPool
from .errors import AudioError, IndexMissingError, UsageError
from .fingerprint import to_text as fingerprint_text
from .indexing import IndexSummary, Reporter, update_from_folders, update_from_json_lines
from .model import ModelInfo, TagModel, model_for_index, resolve_model_path
from .playlists import (
    Query,
    Reason,
    Selection,
    duplicate_groups,
    duplicate_threshold,
    path_points,
    pick,
    ranked_order,
    reasons,
    unit,
)
from .settings import DEFAULT_MAX_SEGMENTS, DEFAULT_TIMEOUT, default_index_folder, default_jobs
from .songinfo import SongInfo, from_folders, read_song_info, read_tags
from .vocabulary import resolve_words

if TYPE_CHECKING:  # the store (sqlite3, annoy) is imported when an index is used, not by tag()
    from .cluster import ClusterPool
    from .records import TagRecord
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


@dataclass(frozen=True)
class TagResult:
    """A file's tag vector: `vector` (n_tags,) float32 over the vocabulary `tags` of
    model `model_id`; `duration` is the number of seconds analysed. `info` holds the
    file's own artist, album, title (its tags, never its folders) and playing time."""

    path: str
    duration: float
    model_id: str
    tags: tuple[str, ...]
    vector: np.ndarray
    info: SongInfo = SongInfo()
    #: the audio fingerprint of the file's first 30 s (fingerprint.py), None when too short
    fingerprint: bytes | None = None

    def top(self, count: int = 10) -> list[tuple[str, float]]:
        """The `count` strongest (tag, score) pairs, best first (0: every tag)."""
        order = np.argsort(-self.vector, kind="stable")
        if count > 0:
            order = order[:count]
        return [(self.tags[i], float(self.vector[i])) for i in order]

    def to_record(self, top: int = 10, with_vector: bool = False) -> dict:
        """The JSON record `qbsd tag` prints (records.tag_record): path, duration, model;
        artist, album, title and length where the file's tags (header) give them, so that
        `qbsd index --from-jsonl` knows them too; tags (and vector, with the audio
        fingerprint in base64, for --from-jsonl's duplicate detection)."""
        from .records import tag_record

        names = {"artist": self.info.artist, "album": self.info.album, "title": self.info.title}
        return tag_record(
            self.path,
            self.duration,
            self.model_id,
            self.top(top),
            names,
            self.info.seconds,
            self.vector if with_vector else None,
            fingerprint_text(self.fingerprint) if with_vector and self.fingerprint else None,
        )

    @classmethod
    def from_record(cls, record: TagRecord) -> TagResult:
        """A checked `qbsd tag --vector` record (records.parse) as a TagResult, e.g. to
        query with; its names count as the file's own tags."""
        from .songinfo import capped

        info = SongInfo(
            capped(record.artist),
            capped(record.album),
            capped(record.title),
            record.length,
            tagged=bool(record.artist and record.title),
        )
        return cls(record.path, record.duration, record.model or "", (), record.vector, info, record.fingerprint)


@dataclass(frozen=True)
class Failure:
    """A file that could not be analysed, with the one-line reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class Match:
    """One song of a list, `rank` from 1. `score` is the cosine similarity to the query
    (similar, and path: to the step's point), the mean of the named tags' scores (search),
    or, for songs and words together, the mean of both standardised (see playlists).
    `artist`, `album`, `title` are None when unknown, `length` the file's playing time in
    seconds; `because` holds the reasons when asked for (explain=True)."""

    rank: int
    path: str
    score: float
    artist: str | None = None
    album: str | None = None
    title: str | None = None
    length: float | None = None
    because: tuple[Reason, ...] = ()


def _max_segments(full: bool) -> int | None:
    return None if full else DEFAULT_MAX_SEGMENTS


def _loaded_model(model: str | os.PathLike | None) -> TagModel:
    """The TagModel for `model` (a shipped model's name, a path, or None: $QBSD_MODEL or
    the fast model), loaded once: tag() called in a loop must not load it once per file."""
    path = resolve_model_path(model).resolve()
    try:
        info = path.stat()
    except OSError:
        return TagModel(path)  # raises the ModelError that names the file
    return _cached_model(path, info.st_size, info.st_mtime_ns)


class _ClusterOnDemand:
    """The connection to the Dask scheduler at `address`, made on the first call (an index
    update calls it only when it has files to analyse, before it writes anything) and
    closed on leaving the `with` block."""

    def __init__(self, address: str):
        self.address = address
        self.cluster = None

    def __call__(self):
        if self.cluster is None:
            from .cluster import Cluster

            self.cluster = Cluster(self.address)
        return self.cluster

    def __enter__(self) -> _ClusterOnDemand:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def _paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Paths as str (bytes decoded as os.fsdecode does); one path alone is a list of one."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    return [os.fsdecode(path) for path in paths]


@functools.lru_cache(maxsize=4)
def _cached_model(path: Path, size: int, mtime_ns: int) -> TagModel:
    # keyed by size and mtime too: a model file rewritten in place is loaded afresh
    return TagModel(path)


def tag(path: str | os.PathLike, *, model: str | os.PathLike | None = None, full: bool = False) -> TagResult:
    """Analyse one file in this process (at most 4 evenly spread 30 s segments, or all of
    it with full=True). Raises AudioError (TooShortError for a file too short for the model) or
    ModelError."""
    tag_model = _loaded_model(model)
    path = os.fsdecode(path)
    song = tag_model.analyse(path, _max_segments(full))
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
    the Dask scheduler at `cluster` (`tcp://host:8786`; needs the cluster extra), each file within
    `timeout` seconds (None or 0: no limit); the workers' stderr (decoders' notes on
    damaged files) is discarded unless keep_worker_stderr. Returns a TagRun: iterate it
    for a TagResult or a Failure per path, in input order (a bad file is a Failure, never
    an exception). ModelError is raised by this call itself, and the workers start here,
    before any thread the caller starts next (a progress bar's, say); so is ClusterError
    (or ModelMismatchError, when the workers have another model)."""
    paths = _paths(paths)
    info = ModelInfo.read(model)
    pool = None
    if paths and cluster:
        from .cluster import Cluster, ClusterPool

        connection = Cluster(cluster)
        try:
            connection.check_model(info)
        except BaseException:
            connection.close()
            raise
        pool = ClusterPool(connection, str(info.path), _max_segments(full), timeout, keep_worker_stderr, True)
    elif paths:
        pool = AnalysisPool(
            str(info.path), min(jobs or default_jobs(), len(paths)), _max_segments(full), timeout, keep_worker_stderr
        )
    return TagRun(pool, paths, info)


class TagRun:
    """The results of `tag_many`, and the worker processes that make them. Use it as a
    context manager, or iterate it to the end: either way the workers end with it, and
    `close()` ends them early (they are killed when it is dropped unfinished, too)."""

    def __init__(self, pool: AnalysisPool | ClusterPool | None, paths: list[str], info: ModelInfo):
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

    def __exit__(self, kind, value, traceback) -> None:
        self.close(kill=kind is not None)


def _pick_scanned(
    store: IndexStore, order, rowids: np.ndarray, selection: Selection, count: int, read: tuple | None = None
) -> tuple[dict, dict, dict, list[int]]:
    """playlists.pick over songs known by rowid (IndexStore.scan): their paths, vectors and
    names are read in batches of the best remaining, as `order` (indices into rowids) gives
    them, until `count` are taken. Returns (path, vector, SongInfo per index read, the
    indices taken); `read`, three such dicts from an earlier call, is added to and spares
    reading those songs again."""
    from .store.ranking import unit_rows

    paths, vectors, infos = read if read is not None else ({}, {}, {})
    taken: list[int] = []
    order = iter(order)
    batch_size = 2 * count + 16
    while len(taken) < count:
        batch = [i for _, i in zip(range(batch_size), order)]
        if not batch:
            break
        unread = [i for i in batch if i not in paths]
        songs = store.songs_by_rowid(rowids[unread]) if unread else {}
        for i in unread:
            if int(rowids[i]) in songs:  # songs deleted meanwhile are skipped
                paths[i], vectors[i], infos[i] = songs[int(rowids[i])]
        batch = [i for i in batch if i in paths]
        if not batch:
            continue
        units = unit_rows(np.stack([vectors[i] for i in batch]))
        batch_taken = pick(
            range(len(batch)),
            [paths[i] for i in batch],
            units,
            [infos[i] for i in batch],
            selection,
            count - len(taken),
        )
        taken += [batch[j] for j in batch_taken]
        batch_size *= 4
    return paths, vectors, infos, taken


class Index:
    """An index folder: SQLite song vectors plus an Annoy forest (see `store`).

    Queries open the folder's database on first use and keep it open until `close()`;
    `update` and `ingest` take the folder's writer lock for their whole run (a second
    writer gets IndexBusyError), while queries keep answering from what is committed.
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

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # ------------------------------------------------------------------ writing

    def _write(self, rebuild: bool, fill, reporter: Reporter | None, check_rebuild=None) -> IndexSummary:
        """Run `fill(store, previous_model)` under the writer lock, then rebuild the forest.

        With rebuild=True, `check_rebuild(previous_model)` runs first and may raise (a bad
        model, a cluster with another model); then the old songs are cleared and the new
        ones filled in within ONE transaction: readers keep answering from the old index
        until it commits, and a rebuild that fails, is interrupted or killed, or stores no
        song at all leaves the old index whole. Only an index too damaged to open is
        deleted first, since there is nothing in it to keep."""
        import time

        from .errors import StoreError
        from .store import IndexStore, writer_lock

        started = time.monotonic()
        self.close()  # a reader's cached snapshot would be stale after the update
        with writer_lock(self.folder, wait=False):
            previous_model = None
            damaged = False
            if rebuild:
                try:  # a rebuilt index keeps a shipped model of its own, unless told otherwise
                    with IndexStore(self.folder, create=False, read_only=True) as old:
                        previous_model = old.model_id
                except IndexMissingError:
                    pass
                except StoreError:
                    damaged = True  # too damaged (or too new) to say: the default model
                if check_rebuild is not None:
                    check_rebuild(previous_model)
                if damaged:
                    IndexStore.reset(self.folder)
            with IndexStore(self.folder, create=True) as store:
                if rebuild:
                    with store.transaction():
                        store.clear()
                        summary = fill(store, previous_model)
                        if store.song_count() == 0:
                            raise StoreError(
                                f"the rebuild found no song to store, so the index at {self.folder} is kept as it was"
                            )
                else:
                    summary = fill(store, previous_model)
                (reporter or Reporter()).rebuilding()
                store.rebuild_annoy()
                summary.songs = store.song_count()
        summary.seconds = time.monotonic() - started
        return summary

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
        scheduler at `cluster` when given), forget deleted ones, and
        rebuild the Annoy forest. rebuild=True starts the index afresh (after a model
        change, or damage). Raises UsageError (a missing folder), ModelError,
        ModelMismatchError, ClusterError, IndexBusyError or IndexDamagedError; bad files are recorded
        as failures (`failures()`), reported to `reporter`, and never raised."""
        names = _paths(folders)
        if not names:
            raise UsageError("give folders to index")
        from .scan import check_folders

        check_folders(names)
        # Connected only when there are files to analyse (an unchanged library needs no
        # scheduler), but before anything is written: an unreachable cluster writes nothing.
        with _ClusterOnDemand(cluster) if cluster else nullcontext() as connect:
            from .store import DATABASE_NAME

            if connect is not None and (rebuild or not (self.folder / DATABASE_NAME).exists()):
                connect()  # every file is to be analysed: connect before the folder is even made

            def check_rebuild(previous_model: str | None) -> None:
                # a rebuild analyses every file: refuse a bad model before the old index goes
                info = ModelInfo.read(model_for_index(model, previous_model))
                if connect is not None:
                    connect().check_model(info)

            return self._write(
                rebuild,
                lambda store, previous_model: update_from_folders(
                    store,
                    names,
                    model_for_index(model, previous_model),
                    jobs or default_jobs(),
                    _max_segments(full),
                    timeout,
                    reporter,
                    keep_worker_stderr,
                    connect,
                ),
                reporter,
                check_rebuild,
            )

    def ingest(
        self,
        lines: Iterable[str] | Iterable[bytes],
        source: str = "stdin",
        *,
        model: str | os.PathLike | None = None,
        rebuild: bool = False,
        reporter: Reporter | None = None,
    ) -> IndexSummary:
        """Store the songs of `qbsd tag --vector` JSON lines (see
        indexing.update_from_json_lines, records.parse); `source` names the lines in messages
        (`SOURCE:LINE: reason`). With rebuild=True the old songs stay whole, and readers keep
        them, unless the lines store at least one song (see _write)."""

        def check_rebuild(previous_model: str | None) -> None:
            if model or os.environ.get("QBSD_MODEL"):  # a named model must load before the old index goes
                ModelInfo.read(model)

        return self._write(
            rebuild,
            lambda store, previous_model: update_from_json_lines(store, lines, source, model, reporter),
            reporter,
            check_rebuild,
        )

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
        self, query: str | os.PathLike | TagResult, *, model: str | os.PathLike | None = None, full: bool = False
    ) -> tuple[np.ndarray, str | None]:
        """(vector, path to leave out of the results) for a query: a TagResult (from
        `tag`, or a `qbsd tag --vector` line), or an audio file, whose stored vector is
        used when the index holds it unchanged; otherwise it is analysed with `model`."""
        store = self._reader()
        if isinstance(query, TagResult):
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
            vector = store.vector_for(exclude, info.st_size, info.st_mtime_ns)
            if vector is None:
                tag_model = _loaded_model(model_for_index(model, store.model_id))
                store.require_model(tag_model.model_id, "the model in use")
                try:
                    vector = tag_model.analyse(path, _max_segments(full)).vector
                except AudioError as bad:  # the reason alone would not say which file
                    raise type(bad)(f"{path}: {bad}") from None
        if len(vector) != store.n_tags:
            raise UsageError(f"query vector has {len(vector)} values, the index has {store.n_tags} tags")
        if not np.all(np.isfinite(vector)):
            raise UsageError("the query vector has values that are not numbers (NaN or infinity)")
        return vector, exclude

    def _seed(
        self, query: str | os.PathLike | TagResult, model, full: bool
    ) -> tuple[np.ndarray, str | None, SongInfo | None]:
        """(vector, absolute path or None, SongInfo) of one query song (see query_vector)."""
        vector, path = self.query_vector(query, model=model, full=full)
        info = None
        if path is not None:
            stored = self._reader().songs_for([path]).get(path)
            if stored is not None:
                info = stored[1]
            elif os.path.exists(path):
                info = read_song_info(path)
            else:
                info = from_folders(path, None)
        return np.asarray(vector, dtype=np.float32), path, info

    def _seeds(self, queries, model, full: bool) -> list[tuple[np.ndarray, str | None, SongInfo | None]]:
        if isinstance(queries, (str, bytes, os.PathLike, TagResult)):
            queries = [queries]
        return [self._seed(query, model, full) for query in queries]

    def _match(
        self, rank: int, path: str, score: float, info: SongInfo | None, because: tuple[Reason, ...] = ()
    ) -> Match:
        info = info or SongInfo()
        return Match(rank, path, float(score), info.artist, info.album, info.title, info.seconds, because)

    def _selection(self, per_artist: int, per_album: int, keep_duplicates: bool) -> Selection:
        if per_artist < 0 or per_album < 0:
            raise UsageError("--per-artist and --per-album take a count of at least 1 (0: no cap)")
        return Selection(duplicate_threshold(self._reader().model_id), per_artist, per_album, keep_duplicates)

    def _playlist(
        self,
        query: Query,
        seeds: list,
        avoided: list,
        top: int,
        per_artist: int,
        per_album: int,
        keep_duplicates: bool,
        explain: bool,
        exact: bool,
        include_self: bool = False,
    ) -> list[Match]:
        """The `top` best songs for `query` that a Selection admits, seeds and counter-
        examples barred (with their duplicates), ranked by exact score, ties by path."""
        if top < 1:
            raise UsageError(f"--top {top}: ask for at least 1 song")
        store = self._reader()

        def fresh_selection() -> Selection:
            selection = self._selection(per_artist, per_album, keep_duplicates)
            for vector, path, info in avoided + ([] if include_self else seeds):
                selection.bar(path, unit(vector), info)
            return selection

        if exact or query.needs_every_song or not query.has_examples or not np.any(query.direction):
            # every song scored, chunk by chunk (numpy only); the vectors and names read
            # back only for the songs the list considers, best first
            rowids, parts = store.scan(query.parts)
            scores = query.combine(parts)
            paths, matrix, infos, taken = _pick_scanned(store, ranked_order(scores), rowids, fresh_selection(), top)
        else:
            # Annoy's candidates, ranked by their exact cosine; more of them while the
            # filters (duplicates, caps, the seeds themselves) leave too few
            wanted = 2 * top + len(seeds) + len(avoided)
            while True:
                found = [path for path, _score in store.nearest(query.direction.astype(np.float32), wanted)]
                stored = store.songs_for(found)
                # in byte order, as the catalogue is, so that ranked_order breaks ties by path
                paths = sorted((path for path in found if path in stored), key=os.fsencode)
                matrix = np.stack([stored[path][0] for path in paths]) if paths else np.zeros((0, store.n_tags))
                unit_rows = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
                infos = [stored[path][1] for path in paths]
                scores = query.scores(matrix, unit_rows)
                taken = pick(ranked_order(scores), paths, unit_rows, infos, fresh_selection(), top)
                if len(taken) >= top or len(found) < wanted:
                    break
                wanted *= 4
        profile = query.profile(store.n_tags) if explain else None
        tags = store.tags
        return [
            self._match(rank, paths[i], scores[i], infos[i], reasons(profile, matrix[i], tags) if explain else ())
            for rank, i in enumerate(taken, 1)
        ]

    def similar(
        self,
        query: str | os.PathLike | TagResult | Iterable[str | os.PathLike | TagResult],
        top: int = 10,
        *,
        avoid: Iterable[str | os.PathLike | TagResult] = (),
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
        `tags` name (resolved as `search` resolves words; see playlists for the weights).
        Seeds, counter-examples and their duplicates are left out (the seeds are kept with
        include_self), and so are duplicates of songs already listed unless keep_duplicates;
        per_artist / per_album > 0 cap the songs of one artist / album. explain=True fills
        each Match's `because`. exact=True scans every song instead of searching the Annoy
        forest. Equal scores are ordered by path, so a query always gives the same list.
        Raises UsageError, AudioError, ModelMismatchError, IndexMissingError or
        IndexDamagedError."""
        seeds = self._seeds(query, model, full)
        if not seeds:
            raise UsageError("give at least one song to query with")
        avoided = self._seeds(avoid, model, full)
        words = [tags] if isinstance(tags, str) else list(tags)
        columns = resolve_words(words, self._reader().tags) if words else []
        query = Query([s[0] for s in seeds], [a[0] for a in avoided], columns)
        return self._playlist(
            query, seeds, avoided, top, per_artist, per_album, keep_duplicates, explain, exact, include_self
        )

    def search(
        self,
        words: str | Iterable[str],
        top: int = 10,
        *,
        like: Iterable[str | os.PathLike | TagResult] = (),
        avoid: Iterable[str | os.PathLike | TagResult] = (),
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
        seeds = self._seeds(like, model, full)
        avoided = self._seeds(avoid, model, full)
        query = Query([s[0] for s in seeds], [a[0] for a in avoided], columns)
        return self._playlist(query, seeds, avoided, top, per_artist, per_album, keep_duplicates, explain, False)

    def path(
        self,
        start: str | os.PathLike | TagResult,
        end: str | os.PathLike | TagResult,
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
        last): step i is the song nearest by cosine to the point i/(steps-1) of the way
        between the two songs' directions (playlists.path_points), chosen greedily in
        order, never a song twice nor a duplicate of one listed (unless keep_duplicates),
        within the per_artist / per_album caps. Each Match's score is its cosine to its
        step's point. Fewer songs come back only when duplicates (unless keep_duplicates) and
        the caps leave too few. Raises
        UsageError for fewer than 2 steps, the same song at both ends, or more steps than
        the index has songs; AudioError for an end that cannot be decoded."""
        if steps < 2:
            raise UsageError(f"--steps {steps}: a path needs at least 2 songs, its start and its end")
        store = self._reader()
        (a, a_path, a_info), (b, b_path, b_info) = self._seed(start, model, full), self._seed(end, model, full)
        if (a_path is not None and a_path == b_path) or np.array_equal(a, b):
            raise UsageError("a path needs two different songs: its start and its end are the same song")
        # two indexed look-ups rather than a set of every path
        ends_indexed = sum(store.vector_for(end_path) is not None for end_path in {a_path, b_path} - {None})
        between = store.song_count() - ends_indexed
        if steps - 2 > between:
            raise UsageError(
                f"--steps {steps}: the index holds {between} songs besides the two ends, "
                f"so a path has at most {between + 2} steps"
            )
        points = path_points(a, b, steps)
        selection = self._selection(per_artist, per_album, keep_duplicates)
        selection.add(a_path or "", unit(a), a_info)
        selection.add(b_path or "", unit(b), b_info)
        # every song's cosine to every point between the ends, chunk by chunk (numpy only);
        # each step then takes the nearest song it admits, as playlists.walk does, reading
        # path, vector and names only for the songs it considers
        inner = points[1:-1]
        rowids, cosines = store.scan(lambda _vectors, unit_rows: unit_rows.astype(np.float64) @ inner.T)
        read: tuple[dict, dict, dict] = ({}, {}, {})
        middle = []
        for step in range(inner.shape[0]):
            *_read, taken = _pick_scanned(store, ranked_order(cosines[:, step]), rowids, selection, 1, read)
            middle += [(step, i, float(cosines[i, step])) for i in taken]
        paths, matrix, infos = read
        fractions = np.linspace(0.0, 1.0, steps)
        tags = store.tags

        def because(step: int, vector: np.ndarray) -> tuple[Reason, ...]:
            if not explain:
                return ()
            profile = (1.0 - fractions[step]) * a + fractions[step] * b
            return reasons(profile, vector, tags)

        songs = [(0, a_path or "", a, a_info, float(unit(a) @ points[0]))]
        songs += [(step + 1, paths[i], matrix[i], infos[i], cosine) for step, i, cosine in middle]
        songs += [(steps - 1, b_path or "", b, b_info, float(unit(b) @ points[-1]))]
        return [
            self._match(rank, path, score, info, because(step, vector))
            for rank, (step, path, vector, info, score) in enumerate(songs, 1)
        ]

    def duplicates(self) -> list[list[Match]]:
        """The groups of songs in the index that are one recording (vector cosine at least
        the model's duplicate threshold, or audio fingerprints that agree; playlists.same_recording):
        each a list of Match sorted by path, `score` being the cosine to the group's first
        song; groups by their first path. Compares every pair (n² cosines; not timed on big indexes)."""
        store = self._reader()
        paths, _matrix, unit_rows, infos = store.catalogue()
        groups = duplicate_groups(paths, unit_rows, infos, duplicate_threshold(store.model_id))
        return [
            [self._match(rank, paths[i], score, infos[i]) for rank, (i, score) in enumerate(group, 1)]
            for group in groups
        ]
