"""Bring an index up to date with folders of audio, or with `qbsd tag --vector` records.

The caller holds the index's writer lock (`store.writer_lock`) for the whole update.
Files are compared with what the store knows: unchanged songs are kept, files that
failed before are not retried until their size or change time differs, deleted files
are forgotten, and the rest are analysed in worker processes (`analysis.AnalysisPool`),
or on the workers of a Dask cluster (`cluster.ClusterPool`).
Analysed files are committed in small batches, with their artist, album, title and
length (read in the analysis process), so a killed run loses at most about a second of
work, and Ctrl-C keeps what was finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from . import fingerprint
from .analysis import Analysis, AnalysisPool
from .errors import ModelMismatchError
from .model import ModelInfo, model_for_index
from .scan import failure_identity, scan, under_any
from .settings import DEFAULT_MAX_SEGMENTS, DEFAULT_TIMEOUT
from .songinfo import completed, from_record, read_song_info

if TYPE_CHECKING:
    from .cluster import Cluster
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


class Reporter:
    """What an update tells its caller as it goes; this base class says nothing.

    `start(total)` comes once the worker processes exist (a progress bar may start its
    thread then), followed by one `advance()` per analysed file and `finish()`. An index
    made before qbsd stored song names gets a second start/advance/finish round, one
    `advance()` per song whose tags are read (no analysis)."""

    def failure(self, path: str, reason: str) -> None:
        """A file failed in this run (a bad file, or a bad JSON line: `path` is its place)."""

    def start(self, total: int) -> None:
        """`total` files are about to be analysed."""

    def advance(self) -> None:
        """One more file is analysed."""

    def finish(self) -> None:
        """The analysis is over (normally or not)."""

    def rebuilding(self) -> None:
        """The search index (the Annoy forest) is being rebuilt, the update's last step."""


def update_from_folders(
    store: IndexStore,
    folders: list[str],
    model: Path | str | None = None,
    jobs: int = 1,
    max_segments: int | None = DEFAULT_MAX_SEGMENTS,
    timeout: float | None = DEFAULT_TIMEOUT,
    reporter: Reporter | None = None,
    keep_stderr: bool = False,
    connect: Callable[[], Cluster] | None = None,
) -> IndexSummary:
    """Analyse the new and changed audio files under `folders` into `store`, and forget
    the deleted ones (only under these folders); on the workers of the cluster that
    `connect()` returns when given (called only when there are files to analyse, before
    anything is written), else in `jobs` local processes. Raises UsageError for a missing
    folder, ModelError, or ModelMismatchError (ClusterError) before anything is written."""
    reporter = reporter or Reporter()
    found = scan(folders)
    roots = [os.path.abspath(folder) for folder in folders]
    known = store.known_files()
    summary = IndexSummary()
    gone = [path for path in known if under_any(path, roots) and path not in found.files and path not in found.problems]
    todo: dict[str, tuple[os.stat_result, bool]] = {}  # path -> (stat, was a song before)
    for path, info in found.files.items():
        previous = known.get(path)
        if (
            previous
            and previous.status == "ok"
            and (previous.size, previous.time_ns) == (info.st_size, info.st_mtime_ns)
        ):
            summary.unchanged += 1
        elif previous and previous.status == "failed" and (previous.size, previous.time_ns) == failure_identity(info):
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
    info = None
    cluster = None
    if todo:
        info = ModelInfo.read(model_for_index(model, store.model_id))
        if connect is not None:
            cluster = connect()
            cluster.check_model(info)
        store.bind_model(info.model_id, info.tags)

    with store.transaction():
        summary.removed = store.remove(gone) and len(gone)
        for path, problem in new_problems:
            summary.failed_now += 1
            reporter.failure(path, problem.reason)
            store.put_failure(path, problem.size, problem.changed_ns, problem.reason)
    if todo:
        _analyse_into(
            store, todo, str(info.path), jobs, max_segments, timeout, reporter, summary, keep_stderr, cluster, roots
        )
    _read_song_infos(store, roots, reporter)
    return summary


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


def _analyse_into(
    store: IndexStore,
    todo: dict[str, tuple[os.stat_result, bool]],
    model_path: str,
    jobs: int,
    max_segments: int | None,
    timeout: float | None,
    reporter: Reporter,
    summary: IndexSummary,
    keep_stderr: bool,
    cluster: Cluster | None,
    roots: list[str],
) -> None:
    batch: list[tuple[Analysis, os.stat_result, bool]] = []
    last_commit = time.monotonic()
    if cluster is not None:
        from .cluster import ClusterPool

        pool = ClusterPool(cluster, model_path, max_segments, timeout, keep_stderr)
    else:  # workers are forked before the reporter may start a progress bar's thread
        pool = AnalysisPool(model_path, min(jobs, len(todo)), max_segments, timeout, keep_stderr)
    with pool:
        reporter.start(len(todo))
        try:
            # Any order, and a None now and then while a slow file holds everything up,
            # so that finished files are committed within BATCH_SECONDS.
            for result in pool.analyse(list(todo), ordered=False, idle=BATCH_SECONDS):
                if result is not None:
                    reporter.advance()
                    batch.append((result, *todo[result.path]))
                if len(batch) >= BATCH_FILES or time.monotonic() - last_commit >= BATCH_SECONDS:
                    _store_batch(store, batch, summary, reporter, roots)
                    batch = []
                    last_commit = time.monotonic()
        except BaseException as stop:
            if not isinstance(stop, Exception):  # Ctrl-C: what was analysed is kept
                _store_batch(store, batch, summary, reporter, roots)
            raise
        finally:
            reporter.finish()
        _store_batch(store, batch, summary, reporter, roots)


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


def _record_problem(record: dict, n_tags: int) -> str | None:
    """Why a `qbsd tag --vector` record cannot be stored, or None."""
    vector = record["vector"]
    if not isinstance(record["path"], str) or not record["path"]:
        return '"path" is not a file name'
    if not isinstance(vector, list) or not all(isinstance(v, (int, float)) for v in vector):
        return '"vector" is not a list of numbers'
    if len(vector) != n_tags:
        return f"vector has {len(vector)} values, the model has {n_tags} tags"
    if not np.all(np.isfinite(vector)):
        return "vector has values that are not numbers (NaN or infinity)"
    if not isinstance(record.get("duration", 0.0), (int, float)):
        return '"duration" is not a number'
    return None


def update_from_json_lines(
    store: IndexStore,
    lines: IO[str] | Iterable[str],
    source: str = "-",
    model: Path | str | None = None,
    reporter: Reporter | None = None,
) -> IndexSummary:
    """Store the songs of `qbsd tag --vector` JSON lines (from the file `source`, or '-'
    for stdin, which only names the lines in messages). A line that is not such a record
    is a failure and the rest go on; a vector of another model than the index's is
    ModelMismatchError, and nothing of the file is stored. An empty index takes the
    vocabulary of `model` (default: the shipped one), which must be the vectors' model."""
    reporter = reporter or Reporter()
    summary = IndexSummary()
    known = store.known_files()
    with store.transaction():
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}" if source != "-" else f"stdin line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or "vector" not in record or "path" not in record:
                reporter.failure(where, "not a `qbsd tag --vector` record (needs path, model and vector)")
                summary.failed += 1
                summary.failed_now += 1
                continue
            model_id = record.get("model")
            if store.model_id is None:
                info = ModelInfo.read(model_for_index(model, model_id))
                if info.model_id != model_id:
                    raise ModelMismatchError(
                        f"{where}: the vector comes from model {model_id}, but the model here is {info.model_id}: "
                        f"tag the files again with this model, or name the vectors' model with --model"
                    )
                store.bind_model(model_id, info.tags)
            else:
                store.require_model(model_id, f"{where}: the vector")
            problem = _record_problem(record, store.n_tags)
            if problem:
                reporter.failure(where, problem)
                summary.failed += 1
                summary.failed_now += 1
                continue
            path = os.path.abspath(record["path"])
            try:
                info = os.stat(path)
                size, mtime = info.st_size, info.st_mtime_ns
            except OSError:
                size, mtime = 0, 0
            store.put_song(
                path,
                size,
                mtime,
                float(record.get("duration", 0.0)),
                np.asarray(record["vector"], dtype=np.float32),
                from_record(record, path),
                fingerprint.from_text(record.get("fingerprint")),  # optional; anything else is ignored
            )
            if path in known:
                summary.updated += 1
            else:
                summary.added += 1
    return summary
