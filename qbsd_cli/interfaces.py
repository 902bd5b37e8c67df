"""The interface that the pools which analyse files share without a common base class,
for the type checker only (nothing is checked at run time): `analysis.AnalysisPool`
(worker processes here) and `cluster.ClusterPool` (the workers of a Dask cluster) have it,
as mypy checks (cluster._POOLS). The front ends' interface is `frontends.FrontEnd`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .analysis import Analysis


class AnalysisPoolLike(Protocol):
    """Analyses files, yielding an `analysis.Analysis` per path; a context manager whose
    exit ends the work (killing it when left on an error)."""

    def analyse(
        self, paths: Iterable[str], ordered: bool = True, idle: float | None = None
    ) -> Iterator[Analysis | None]:
        """An Analysis per path (in input order unless ordered=False); None whenever `idle`
        seconds pass without a result."""
        ...

    def close(self, kill: bool = False) -> None: ...

    def __enter__(self) -> AnalysisPoolLike: ...

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None: ...
