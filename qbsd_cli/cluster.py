"""Analyse files on the workers of a Dask cluster (`--cluster tcp://host:8786`, or $QBSD_CLUSTER).

Needs the `cluster` extra (dask's `distributed`), imported only from here, and only
when a cluster is asked for. The command's own process stays what it is locally: it
scans, writes the index (every guarantee of indexing.py holds: batches committed as
results arrive, the writer lock, failures recorded) and sends the analysis of files,
by path, to the workers. So the workers must read the files at the same paths (a
shared filesystem) and have the same qbsd installed: the model is sent by its shipped
name (or by the path of a model file, also on the shared filesystem), and a worker
whose model has another id refuses to analyse.

On a worker, a task is a batch of files analysed by an `analysis.AnalysisPool` of one
process, forked by the worker thread once and kept for the next batches: the model is
loaded once per worker thread, the per-file time limit works exactly as it does
locally (the analysis process is killed and replaced when a file takes too long), and a
file that crashes its decoder costs that file, not the Dask worker. (That process undoes
the malloc setting Dask's nanny gives workers, which made the analysis 1.7x slower.) A Dask worker that
dies (killed, out of memory) takes its running batches with it; the scheduler runs
them again on another worker, so nothing is lost. A batch whose workers keep dying
(distributed's `allowed-failures`) is split and its files retried one by one, so that
only a file that really kills workers is reported as failed.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, cast

from .analysis import Analysis, AnalysisPool
from .errors import ClusterError, ModelMismatchError, model_mismatch
from .model import SHIPPED_MODELS, ModelInfo, resolve_model_path, shipped_model_path
from .settings import AnalysisSettings

if TYPE_CHECKING:
    from distributed import Client, Future, as_completed

    from .interfaces import AnalysisPoolLike

#: Files per Dask task, at most: a batch of the fast model's default analysis takes about
#: a second, against milliseconds of scheduling per task (benchmarks/CLUSTER.md).
FILES_PER_TASK = 8
#: Batches in flight per worker thread: enough to keep every worker busy while results
#: travel back, few enough that a catalogue of millions is not all submitted at once.
BATCHES_PER_THREAD = 3
#: How long a run waits for the scheduler to have at least one worker.
WORKER_WAIT_S = 60.0

INSTALL_HINT = "pip install 'qbsd[cluster]'  (or pip install '.[cluster]' in a checkout)"


def _distributed() -> ModuleType:
    try:
        import distributed
    except ImportError as missing:
        raise ClusterError(f"--cluster needs the cluster extra ({missing.name} is missing): {INSTALL_HINT}") from None
    return distributed


class Cluster:
    """A connection to the Dask scheduler at `address`, made (or refused, with a ClusterError
    that names the address) before anything is written. The connection timeout is Dask's
    own setting, `distributed.comm.timeouts.connect` (30 s unless configured, e.g. by
    $DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)."""

    def __init__(self, address: str):
        distributed = _distributed()
        self.address = address
        try:
            self.client: Client = distributed.Client(address, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as failure:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {failure}") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, OSError):
            self.close()
            raise ClusterError(
                f"the Dask scheduler at {address} has no workers (waited {WORKER_WAIT_S:g} s): "
                f"start some with `dask worker {address}`"
            ) from None

    def threads(self) -> int:
        """Worker threads in the cluster now (each analyses one file at a time)."""
        return max(1, sum(self.client.nthreads().values()))

    def check_model(self, info: ModelInfo) -> None:
        """Raise ModelMismatchError (or ClusterError) unless every worker has the model `info`."""
        spec = model_spec(info.path)
        try:
            found = self.client.run(_worker_model_id, spec)
        except Exception as failure:  # a worker without qbsd cannot even unpickle the call
            raise ClusterError(
                f"the Dask workers at {self.address} cannot load qbsd's model {spec}: "
                f"{type(failure).__name__}: {failure}; install the same qbsd on every worker"
            ) from None
        for worker, model_id in sorted(found.items()):
            if model_id != info.model_id:
                raise _worker_mismatch(worker, spec, model_id, info.model_id)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(address: str | None) -> Cluster | None:
    """The cluster at `address` (None: no cluster, the files are analysed here)."""
    return Cluster(address) if address else None


def model_spec(model_path: str | os.PathLike) -> str:
    """How a worker finds the model: a shipped model by its name (the worker's own copy,
    wherever its qbsd is installed), any other model file by its absolute path."""
    resolved = os.path.realpath(model_path)
    for name in SHIPPED_MODELS:
        if os.path.realpath(shipped_model_path(name)) == resolved:
            return name
    return resolved


def _worker_mismatch(worker: str, spec: str, found: str | None, expected: str) -> ModelMismatchError:
    return model_mismatch(
        f"the Dask worker at {worker}, for {spec!r}",
        found,
        "this qbsd",
        expected,
        "install the same qbsd version (and model file) on every worker",
    )


# --------------------------------------------------------------------------- the worker side

#: Per worker thread: (model path, max segments, timeout, keep stderr) and its pool of one process.
_worker_pools: dict[int, tuple[tuple, AnalysisPool]] = {}
_worker_pools_lock = threading.Lock()


def _worker_model_id(spec: str) -> str | None:
    """The id of the model `spec` on this worker (None when it has no such model)."""
    try:
        return ModelInfo.read(resolve_model_path(spec)).model_id
    except Exception:
        return None


#: glibc's ceiling for its dynamic mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX),
#: and the trim threshold it pairs with it (twice that).
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD


def _undo_nanny_malloc_settings() -> None:
    """In an analysis process forked from a Dask worker: give malloc back its usual large
    thresholds. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns
    off glibc's dynamic mmap threshold, so every large numpy array of the analysis is mapped
    and unmapped afresh: measured, that made the analysis of 8 clips 1.7x slower (0.53 s
    against 0.31 s; these settings restored 0.28 s)."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: its malloc never read the variable
        return


def _worker_pool(model_path: str, max_segments: int | None, timeout: float | None, keep_stderr: bool) -> AnalysisPool:
    """This worker thread's analysis process for these settings, started on first use."""
    settings = (model_path, max_segments, timeout, keep_stderr)
    thread = threading.get_ident()
    with _worker_pools_lock:
        kept = _worker_pools.get(thread)
    if kept is not None and kept[0] == settings:
        return kept[1]
    if kept is not None:
        kept[1].close()
    # Imported before the fork, so that the analysis process finds them loaded and never
    # takes an import lock another thread of the worker may hold at that moment.
    import librosa  # noqa: F401
    import onnxruntime  # noqa: F401

    from . import audio, features, model  # noqa: F401

    pool = AnalysisPool(model_path, 1, max_segments, timeout, keep_stderr, prepare=_undo_nanny_malloc_settings)
    with _worker_pools_lock:
        _worker_pools[thread] = (settings, pool)
    return pool


def analyse_batch(
    paths: list[str], spec: str, model_id: str, max_segments: int | None, timeout: float | None, keep_stderr: bool
) -> list[Analysis]:
    """Run on a Dask worker: one Analysis per path, in order. Raises ModelMismatchError
    when this worker's model `spec` is not `model_id`."""
    from distributed import get_worker

    found = _worker_model_id(spec)
    if found != model_id:
        raise _worker_mismatch(get_worker().address, spec, found, model_id)
    pool = _worker_pool(str(resolve_model_path(spec)), max_segments, timeout, keep_stderr)
    # without `idle`, the pool yields no None
    return cast("list[Analysis]", list(pool.analyse(paths)))


# --------------------------------------------------------------------------- the client side

#: How often a run asks the scheduler how many worker threads there are: often enough
#: that workers joining (or leaving) mid-run get (or stop getting) batches within seconds,
#: rarely enough that the question costs nothing against the batches' own traffic.
THREAD_COUNT_REFRESH_S = 5.0
#: How often the wait for a finished batch looks again (a result is picked up at most
#: this late, against about a second of analysis per batch).
POLL_S = 0.02


class _ThreadCount:
    """The cluster's worker threads, asked again every THREAD_COUNT_REFRESH_S."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.count = cluster.threads()
        self.asked = time.monotonic()

    def now(self) -> int:
        if time.monotonic() - self.asked >= THREAD_COUNT_REFRESH_S:
            self.count = self.cluster.threads()
            self.asked = time.monotonic()
        return self.count


def _next_finished(finishing: as_completed, idle: float | None) -> list[Future]:
    """The futures of `finishing` (a distributed.as_completed) done by now, waiting for at
    least one; [] after `idle` seconds of none."""
    deadline = None if idle is None else time.monotonic() + idle
    while not finishing.has_ready():
        if deadline is not None and time.monotonic() >= deadline:
            return []
        time.sleep(POLL_S)
    return finishing.next_batch(block=False)


class ClusterPool:
    """Analyses files on the cluster's workers (an analysis.AnalysisPoolLike, as AnalysisPool):
    `analyse(paths, ordered, idle)` yields an Analysis per path, `close()` cancels what is
    left. Nothing runs on the cluster until `analyse` is iterated."""

    def __init__(self, cluster: Cluster, info: ModelInfo, settings: AnalysisSettings, owns_cluster: bool = False):
        self.cluster = cluster
        self.owns_cluster = owns_cluster  # close() closes the connection too
        self.model_id = info.model_id
        self.spec = model_spec(info.path)
        self.max_segments = settings.max_segments
        self.timeout = settings.timeout if settings.timeout and settings.timeout > 0 else None
        self.keep_stderr = settings.keep_stderr
        self._futures: set = set()

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(kill=kind is not None)

    def close(self, kill: bool = False) -> None:
        """Cancel the batches still queued or running (a running one finishes on its worker
        and its result is dropped)."""
        futures, self._futures = list(self._futures), set()
        if futures:
            self.cluster.client.cancel(futures)
        if self.owns_cluster:
            self.owns_cluster = False
            self.cluster.close()

    def _submit(self, batch: list[tuple[int, str]]) -> Future:
        future = self.cluster.client.submit(
            analyse_batch,
            [path for _, path in batch],
            self.spec,
            self.model_id,
            self.max_segments,
            self.timeout,
            self.keep_stderr,
            pure=False,  # the files may have changed since the last run: never a cached result
        )
        self._futures.add(future)
        return future

    def analyse(
        self, paths: Iterable[str], ordered: bool = True, idle: float | None = None
    ) -> Iterator[Analysis | None]:
        """Yield an Analysis per path: in input order, or (ordered=False) as each batch
        comes back. With `idle` seconds, also yield None whenever that long passes
        without a result (so the caller commits what it has). Raises ModelMismatchError
        when a worker has another model, ClusterError when a batch cannot run at all."""
        distributed = _distributed()
        numbered = list(enumerate(paths))
        threads = _ThreadCount(self.cluster)
        size = max(1, min(FILES_PER_TASK, math.ceil(len(numbered) / (BATCHES_PER_THREAD * threads.now()))))
        waiting = deque(numbered[start : start + size] for start in range(0, len(numbered), size))
        running: dict = {}  # future -> its batch of (position, path)
        finishing = distributed.as_completed(loop=self.cluster.client.loop)  # each future joins as it is submitted
        done: dict[int, Analysis] = {}
        next_out = 0
        try:
            while waiting or running:
                room = BATCHES_PER_THREAD * threads.now() - len(running)
                while waiting and room > 0:
                    batch = waiting.popleft()
                    future = self._submit(batch)
                    running[future] = batch
                    finishing.add(future)
                    room -= 1
                finished = _next_finished(finishing, idle)
                for future in finished:
                    batch = running.pop(future)
                    self._futures.discard(future)
                    for (position, _), result in zip(batch, self._result(future, batch, waiting)):
                        done[position] = result
                if ordered:
                    while next_out in done:
                        yield done.pop(next_out)
                        next_out += 1
                else:
                    yield from done.values()
                    done.clear()
                if not finished:  # `idle` seconds without a result
                    yield None
        except BaseException:
            self.close(kill=True)
            raise

    def _result(self, future: Future, batch: list[tuple[int, str]], waiting: deque) -> list[Analysis]:
        """The batch's analyses; [] when it is to be retried file by file (queued on `waiting`)."""
        distributed = _distributed()
        try:
            return future.result()
        except distributed.KilledWorker:
            if len(batch) > 1:
                waiting.extendleft([item] for item in reversed(batch))
                return []
            return [Analysis(batch[0][1], error="it killed every Dask worker that analysed it (out of memory?)")]
        except ModelMismatchError:
            raise
        except Exception as failure:
            raise ClusterError(
                f"a Dask worker of {self.cluster.address} could not analyse files: "
                f"{type(failure).__name__}: {failure}; install the same qbsd on every worker"
            ) from None


if TYPE_CHECKING:
    # both pools have the interface that tag and index runs use (interfaces.AnalysisPoolLike)
    _POOLS: tuple[type[AnalysisPoolLike], ...] = (AnalysisPool, ClusterPool)
