"""Writing an index: bring it up to date with folders of audio, or with `qbsd tag --vector`
records. The one home of writes (`api.Index.update` and `ingest` only call it).

`IndexWriter` holds the index's writer lock for the whole update, clears and refills a
rebuilt index in one transaction, and rebuilds the forest at the end; `update_index` and
`ingest_lines` are the two ways to fill it. The model of a write is resolved once
(`ModelChoice`) and travels down to the checks, the store and the analysis pool.
Files are compared with what the store knows: unchanged songs are kept, files that
failed before are not retried until their size or change time differs, deleted files
are forgotten, and the rest are analysed in worker processes (`analysis.AnalysisPool`),
or on the workers of a Dask cluster (`cluster.ClusterPool`).
Analysed files are committed in small batches, with their artist, album, title and
length (read in the analysis process), so a killed run loses at most about a second of
work, and Ctrl-C keeps what was finished.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .analysis import Analysis, timed_out_after
from .audio import regular_file
from .errors import AudioError, IndexMissingError, StoreError, model_mismatch
from .model import ModelInfo, model_for_index
from .pools import AnalysisPoolLike, open_pool
from .reporting import Reporter
from .scan import check_folders, failure_identity, scan, under_any
from .settings import AnalysisSettings, cluster_address
from .songinfo import completed, from_record, read_song_info

if TYPE_CHECKING:
    from .cluster import Cluster
    from .records import TagRecord
    from .store import IndexStore

#: Analysed files are committed at least this often (and every BATCH_FILES files), so a
#: killed run loses at most this much work; SQLite commits in WAL mode cost about 1 ms.
BATCH_SECONDS = 1.0
BATCH_FILES = 16


@dataclass
class IndexSummary:
    """What an update did. `failed` counts every failure on record under the folders (old
    ones included); `failed_now` only those this run found."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    failed: int = 0
    unchanged: int = 0
    failed_now: int = 0
    songs: int = 0  # songs in the whole index afterwards
    seconds: float = 0.0  # wall-clock time of the update


class ModelChoice:
    """The model of one write, resolved once, on first use: the one asked for (a shipped
    model's name or a file), else the index's own shipped model, else $QBSD_MODEL or the
    fast model (model.model_for_index). An unchanged library never reads it."""

    def __init__(self, requested: str | os.PathLike | None):
        self.requested = requested
        self._info: ModelInfo | None = None

    def info(self, index_model_id: str | None) -> ModelInfo:
        """The ModelInfo, for an index of model `index_model_id` (None: new or cleared)."""
        if self._info is None:
            self._info = ModelInfo.read(model_for_index(self.requested, index_model_id))
        return self._info


@dataclass(frozen=True)
class FolderUpdate:
    """What `qbsd index DIR...` asks: the folders, the model (ModelChoice.requested), how
    each file is analysed, in `jobs` local processes or on the Dask scheduler at `cluster`,
    and whether the index starts afresh (`rebuild`)."""

    folders: list[str]
    model: str | os.PathLike | None = None
    settings: AnalysisSettings = AnalysisSettings()
    jobs: int = 1
    cluster: str | None = None
    rebuild: bool = False


@dataclass
class _Run:
    """One update in progress: where it writes, what it found, whom it tells."""

    store: IndexStore
    reporter: Reporter
    summary: IndexSummary
    roots: list[str]


def update_from_folders(
    store: IndexStore,
    update: FolderUpdate,
    model: ModelChoice,
    reporter: Reporter | None = None,
    connect: Callable[[], Cluster] | None = None,
) -> IndexSummary:
    """Analyse the new and changed audio files under `update.folders` into `store`, and
    forget the deleted ones (only under these folders); on the workers of the cluster that
    `connect()` returns when given (called only when there are files to analyse, before
    anything is written), else in `update.jobs` local processes. Raises UsageError for a
    missing folder, ModelError, or ModelMismatchError (ClusterError) before anything is written."""
    run = _Run(store, reporter or Reporter(), IndexSummary(), [os.path.abspath(f) for f in update.folders])
    summary = run.summary
    found = scan(update.folders)
    known = store.known_files()
    # a song under a folder that could not be read (permissions, a failing disk) is not
    # gone: it is kept until the folder can be read and says so
    gone = [
        path
        for path in known
        if under_any(path, run.roots)
        and path not in found.files
        and path not in found.problems
        and not under_any(path, found.unreadable)
    ]
    todo: dict[str, tuple[os.stat_result, bool]] = {}  # path -> (stat, was a song before)
    retry_timed_out = _longer_timeout(store, update.settings.timeout)
    for path, info in found.files.items():
        previous = known.get(path)
        if (
            previous
            and previous.status == "ok"
            and (previous.size, previous.time_ns) == (info.st_size, info.st_mtime_ns)
        ):
            summary.unchanged += 1
        elif (
            previous
            and previous.status == "failed"
            and (previous.size, previous.time_ns) == failure_identity(info)
            and not retry_timed_out(path)
        ):
            summary.failed += 1  # failed before and unchanged since: not retried
        else:
            todo[path] = (info, previous is not None and previous.status == "ok")
    new_problems = []
    for path, problem in found.problems.items():
        summary.failed += 1
        previous = known.get(path)
        if not (
            previous
            and previous.status == "failed"
            and (previous.size, previous.time_ns) == (problem.size, problem.changed_ns)
        ):
            new_problems.append((path, problem))

    # Check the model before writing anything: a refused run must leave the index as it was.
    model_info: ModelInfo | None = None
    cluster: Cluster | None = None
    if todo:
        model_info = model.info(store.model_id)
        cluster = connect() if connect is not None else None
        if cluster is not None:
            cluster.check_model(model_info)
        store.bind_model(model_info.model_id, model_info.tags)

    with store.transaction():
        summary.removed = store.remove(gone) and len(gone)
        for path, problem in new_problems:
            summary.failed_now += 1
            run.reporter.failure(path, problem.reason)
            store.put_failure(path, problem.size, problem.changed_ns, problem.reason)
    if model_info is not None:
        # workers are forked here, before the reporter may start a progress bar's thread
        _analyse_into(run, todo, open_pool(model_info, update.settings, min(update.jobs, len(todo)), cluster))
    _read_song_infos(store, run.roots, run.reporter)
    return summary


def _longer_timeout(store: IndexStore, timeout: float | None) -> Callable[[str], bool]:
    """Whether a file that failed is to be retried although unchanged: it timed out under a
    shorter limit than `timeout` (None: no limit) gives it now."""
    timed_out = {path: after for path, reason in store.failures() if (after := timed_out_after(reason)) is not None}
    return lambda path: path in timed_out and (timeout is None or timeout > timed_out[path])


def _root_of(path: str, roots: list[str]) -> str | None:
    """The deepest of `roots` holding `path`: it names the artist and album folders (songinfo)."""
    return next((root for root in sorted(roots, key=len, reverse=True) if under_any(path, [root])), None)


def _read_song_infos(store: IndexStore, roots: list[str], reporter: Reporter) -> None:
    """Read the artist, album, title and length of the songs under `roots` stored without
    them: those of an index made before qbsd stored them (analysed songs get theirs from
    the analysis). A file open each, no analysis, committed every BATCH_SECONDS like the
    analysis, so a killed run keeps what it read; the reporter counts them."""
    missing = store.paths_without_info()
    if not missing:
        return
    readable = [(path, root) for path in missing if (root := _root_of(path, roots)) is not None]
    reporter.start(len(readable))
    try:
        position = 0
        while position < len(readable):
            started = time.monotonic()
            with store.transaction():
                while position < len(readable) and time.monotonic() - started < BATCH_SECONDS:
                    path, root = readable[position]
                    store.set_song_info(path, read_song_info(path, root))
                    position += 1
                    reporter.advance()
        if len(readable) == len(missing):
            store.all_info_read()
    finally:
        reporter.finish()


def _analyse_into(run: _Run, todo: dict[str, tuple[os.stat_result, bool]], pool: AnalysisPoolLike) -> None:
    """Analyse the files of `todo` (path -> (stat, was a song before)) with `pool`,
    committing every BATCH_SECONDS or BATCH_FILES files."""
    batch: list[tuple[Analysis, os.stat_result, bool]] = []
    last_commit = time.monotonic()
    with pool:
        run.reporter.start(len(todo))
        try:
            # Any order, and a None now and then while a slow file holds everything up,
            # so that finished files are committed within BATCH_SECONDS.
            for result in pool.analyse(list(todo), ordered=False, idle=BATCH_SECONDS):
                if result is not None:
                    run.reporter.advance()
                    batch.append((result, *todo[result.path]))
                if len(batch) >= BATCH_FILES or time.monotonic() - last_commit >= BATCH_SECONDS:
                    _store_batch(run.store, batch, run.summary, run.reporter, run.roots)
                    batch = []
                    last_commit = time.monotonic()
        except BaseException as stop:
            if not isinstance(stop, Exception):  # Ctrl-C: what was analysed is kept
                _store_batch(run.store, batch, run.summary, run.reporter, run.roots)
            raise
        finally:
            run.reporter.finish()
        _store_batch(run.store, batch, run.summary, run.reporter, run.roots)


def _store_batch(
    store: IndexStore,
    batch: list[tuple[Analysis, os.stat_result, bool]],
    summary: IndexSummary,
    reporter: Reporter,
    roots: list[str],
) -> None:
    if not batch:
        return
    with store.transaction():
        for result, info, existed in batch:
            if result.error:
                reporter.failure(result.path, result.error)
                size, changed = failure_identity(info)
                store.put_failure(result.path, size, changed, result.error)
                summary.failed += 1
                summary.failed_now += 1
            else:
                assert result.vector is not None  # an Analysis without an error has one
                # the file's own tags came with the analysis; folder names stand in for missing ones
                song = completed(result.tags, result.path, _root_of(result.path, roots))
                store.put_song(
                    result.path,
                    info.st_size,
                    info.st_mtime_ns,
                    result.duration,
                    result.vector,
                    song,
                    fingerprint=result.fingerprint,
                )
                if existed:
                    summary.updated += 1
                else:
                    summary.added += 1


def update_from_json_lines(
    store: IndexStore,
    lines: IO[bytes] | IO[str] | Iterable[bytes | str],
    source: str = "stdin",
    model: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> IndexSummary:
    """Store the songs of `qbsd tag --vector` JSON lines (from the file `source`, or
    "stdin", which only names the lines in messages: `SOURCE:LINE`). Each line is checked
    by records.parse; a bad line (or one naming something other than a regular file, with a
    vector of another length than the model's, or of another model than the index's) is a
    failure and the rest go on. An empty index takes the vocabulary of `model` (default:
    the index's own or the shipped one): lines of another model are refused. A path given
    twice is stored once, as its last line says. Lines are committed at least every
    BATCH_SECONDS (within a rebuild's one transaction, at its end), and Ctrl-C keeps those
    read."""
    from .errors import ModelMismatchError
    from .records import RecordError, read

    run = _Ingest(store, reporter or Reporter(), store.known_files(), model)
    records = read(lines, source)
    finished = False
    while not finished:
        started = time.monotonic()
        stop: BaseException | None = None
        with store.transaction():
            try:
                for where, record in records:
                    if isinstance(record, RecordError):
                        run.bad(where, str(record))
                    else:
                        try:
                            run.store_record(where, record)
                        except ModelMismatchError as other_model:
                            run.bad(where, str(other_model).removeprefix(f"{where}: "))
                    if time.monotonic() - started >= BATCH_SECONDS:
                        break
                else:
                    finished = True
            except BaseException as interrupted:
                if isinstance(interrupted, Exception):
                    raise  # an error rolls the batch back
                stop = interrupted  # Ctrl-C: the lines read are committed, then it stops
        if stop is not None:
            raise stop
    return run.summary


class _Ingest:
    """One `--from-jsonl` run: where its songs go, what it counted, whom it tells."""

    def __init__(
        self, store: IndexStore, reporter: Reporter, known: dict, model: str | os.PathLike[str] | None
    ) -> None:
        self.store, self.reporter, self.known, self.model = store, reporter, known, model
        self.summary = IndexSummary()
        self.stored: set[str] = set()

    def bad(self, where: str, reason: str) -> None:
        self.reporter.failure(where, reason)
        self.summary.failed += 1
        self.summary.failed_now += 1

    def store_record(self, where: str, record: TagRecord) -> None:
        """Store one checked record (or count it as a failure); ModelMismatchError for a
        vector of another model than the index's."""
        store = self.store
        if store.model_id is None:
            info = ModelInfo.read(model_for_index(self.model, record.model))
            if info.model_id != record.model:
                raise model_mismatch(
                    f"{where}: the vector",
                    record.model,
                    "the model in use",
                    info.model_id,
                    "tag the files again with this model, or name the vectors' model with --model",
                )
            store.bind_model(info.model_id, info.tags)
        else:
            store.require_model(record.model, f"{where}: the vector")
        assert record.vector is not None  # records.read asks for one (need_vector)
        if len(record.vector) != store.n_tags:
            self.bad(where, f"the vector has {len(record.vector)} values, the model has {store.n_tags} tags")
            return
        path = os.path.abspath(record.path)
        try:  # the same check as every path: nothing but a regular file is opened
            size, mtime, regular = *_identity(regular_file(path)), True
        except AudioError as problem:
            if os.path.lexists(path):
                self.bad(where, f"{path}: {problem}")
                return
            size, mtime, regular = 0, 0, False  # tagged on another machine: kept by name
        names = from_record(record, path, regular)
        store.put_song(path, size, mtime, record.duration, record.vector, names, record.fingerprint)
        if path in self.stored:
            return  # given twice: the later line wins, the song counts once
        self.stored.add(path)
        if path in self.known:
            self.summary.updated += 1
        else:
            self.summary.added += 1


def _identity(info: os.stat_result) -> tuple[int, int]:
    """(size in bytes, st_mtime_ns): what tells a stored song's file changed."""
    return info.st_size, info.st_mtime_ns


# --------------------------------------------------------------------------- the writer


class _ClusterOnDemand:
    """The connection to the Dask scheduler at `address`, made on the first call (an index
    update calls it only when it has files to analyse, before it writes anything) and
    closed on leaving the `with` block."""

    def __init__(self, address: str):
        self.address = address
        self.cluster: Cluster | None = None

    def __call__(self) -> Cluster:
        if self.cluster is None:
            from .cluster import Cluster

            self.cluster = Cluster(self.address)
        return self.cluster

    def __enter__(self) -> _ClusterOnDemand:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


class IndexWriter:
    """The one writer of the index in `folder`: `write` takes the writer lock, runs a fill,
    and rebuilds the forest."""

    def __init__(self, folder: Path, reporter: Reporter | None = None):
        self.folder = folder
        self.reporter = reporter or Reporter()

    def write(
        self,
        rebuild: bool,
        fill: Callable[[IndexStore, str | None], IndexSummary],
        check: Callable[[str | None], None] | None = None,
    ) -> IndexSummary:
        """Run `fill(store, previous_model)` under the writer lock, then rebuild the forest.

        With rebuild=True, `check(previous_model)` runs first and may raise (a bad model, a
        cluster with another model); then the old songs are cleared and the new ones filled
        in within ONE transaction: readers keep answering from the old index until it
        commits, and a rebuild that fails, is interrupted or killed, or stores no song at
        all leaves the old index whole. Only an index too damaged to open is deleted
        first, since there is nothing in it to keep."""
        from .store import IndexStore, writer_lock

        started = time.monotonic()
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
                if check is not None:
                    check(previous_model)
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
                self.reporter.rebuilding()
                store.rebuild_annoy()
                summary.songs = store.song_count()
        summary.seconds = time.monotonic() - started
        return summary


def update_index(folder: Path, update: FolderUpdate, reporter: Reporter | None = None) -> IndexSummary:
    """Bring the index in `folder` up to date with `update.folders` (update_from_folders)
    under IndexWriter. Raises UsageError for a missing folder; ModelError,
    ModelMismatchError, ClusterError before anything is written."""
    if not update.folders:
        from .errors import UsageError

        raise UsageError("give folders to index")
    check_folders(update.folders)
    model = ModelChoice(update.model)
    address = cluster_address(update.cluster)
    # Connected only when there are files to analyse (an unchanged library needs no
    # scheduler), but before anything is written: an unreachable cluster writes nothing.
    with _ClusterOnDemand(address) if address else nullcontext() as connect:
        from .store import DATABASE_NAME

        if connect is not None and (update.rebuild or not (folder / DATABASE_NAME).exists()):
            connect()  # every file is to be analysed: connect before the folder is even made

        def check(previous_model: str | None) -> None:
            # a rebuild analyses every file: refuse a bad model before the old index is touched
            info = model.info(previous_model)
            if connect is not None:
                connect().check_model(info)

        return IndexWriter(folder, reporter).write(
            update.rebuild,
            lambda store, _previous: update_from_folders(store, update, model, reporter, connect),
            check,
        )


def ingest_lines(
    folder: Path,
    lines: IO[bytes] | IO[str] | Iterable[bytes | str],
    source: str = "stdin",
    model: str | os.PathLike | None = None,
    rebuild: bool = False,
    reporter: Reporter | None = None,
) -> IndexSummary:
    """Store the songs of `qbsd tag --vector` lines in the index in `folder`
    (update_from_json_lines) under IndexWriter; a rebuild keeps the old songs unless the
    lines store at least one."""

    def check(_previous: str | None) -> None:
        ModelInfo.read(model)  # a model named here ($QBSD_MODEL too) must load before a rebuild starts

    return IndexWriter(folder, reporter).write(
        rebuild, lambda store, _previous: update_from_json_lines(store, lines, source, model, reporter), check
    )
