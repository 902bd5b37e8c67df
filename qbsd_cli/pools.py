"""The one place that picks what analyses files: local worker processes
(analysis.AnalysisPool) or the workers of a Dask cluster (cluster.ClusterPool), both an
`interfaces.AnalysisPoolLike`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .analysis import AnalysisPool
from .interfaces import AnalysisPoolLike
from .settings import AnalysisSettings

if TYPE_CHECKING:
    from .cluster import Cluster
    from .model import ModelInfo


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
