"""Tagging files: one in this process (`tag`), or many in worker processes or on a Dask
cluster (`tag_many`, a `TagRun` of TagResult or Failure per path, in input order)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable

from .model import ModelInfo, loaded_model
from .pools import AnalysisPoolLike, open_pool
from .results import Failure, TagResult
from .settings import DEFAULT_TIMEOUT, AnalysisSettings, cluster_address, default_jobs
from .songinfo import read_tags


def paths_of(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
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
    paths = paths_of(paths)
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
        assert analysis is not None  # only an unordered pool with `idle` yields None
        if analysis.error or analysis.vector is None:
            return Failure(analysis.path, analysis.error or "no vector")
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
        if self._finalizer is not None and self._finalizer.alive and self._pool is not None:
            self._finalizer.detach()
            self._pool.close(kill=kill)

    def __enter__(self) -> TagRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: object, traceback: object) -> None:
        self.close(kill=kind is not None)
