"""The one place that picks what analyses files: local worker processes
(analysis.AnalysisPool) or the workers of a Dask cluster (cluster.ClusterPool), both an
`AnalysisPoolLike`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from .analysis import Analysis, AnalysisPool
from .settings import AnalysisSettings

if TYPE_CHECKING:
    from .cluster import Cluster
    from .model import ModelInfo


class AnalysisPoolLike(Protocol):
    """What analyses files for tag_many and the index writer (AnalysisPool, ClusterPool):
    `analyse` yields an Analysis per path (in input order, or as each finishes with
    ordered=False, and None every `idle` seconds while nothing finishes); `close` ends the
    work (kill=True: at once); leaving the `with` block closes it."""

    def analyse(
        self, paths: Iterable[str], ordered: bool = True, idle: float | None = None
    ) -> Iterator[Analysis | None]: ...

    def close(self, kill: bool = False) -> None: ...

    def __enter__(self) -> AnalysisPoolLike: ...

    def __exit__(self, kind: object, value: object, traceback: object) -> None: ...


def open_pool(
    info: ModelInfo, settings: AnalysisSettings, jobs: int, cluster: Cluster | None = None, owns_cluster: bool = False
) -> AnalysisPoolLike:
    """The pool that analyses with model `info` and `settings`: on the workers of `cluster`
    (cluster.ClusterPool; it closes the connection with itself when `owns_cluster`), else
    `jobs` local worker processes. The one place that picks between them."""
    if cluster is not None:
        from .cluster import ClusterPool

        return ClusterPool(cluster, info, settings, owns_cluster)
    return AnalysisPool(str(info.path), jobs, settings.max_segments, settings.timeout, settings.keep_stderr)
