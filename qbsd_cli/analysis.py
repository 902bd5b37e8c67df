"""Analyse many files with the tag model, in worker processes with a per-file time limit.

Every file is analysed in a worker process, never in the command's own process, so
that a file that makes a decoder hang (or crash, or eat all memory) costs one failed
file, not the run: a worker that exceeds the time limit is killed and replaced, and a
worker that dies is replaced, the file reported as failed either way. Workers are
forked once per run (and again only to replace one), each loading the ONNX model with
one onnxruntime thread, so `--jobs N` uses N cores without oversubscription and the
normal path spawns no process per file. Results come back in input order; a file that
fails yields its one-line reason instead of a vector, and the batch goes on.

The workers are plain `os.fork()` children (Linux and macOS) that:
  * ignore SIGINT: Ctrl-C reaches the whole process group, and the command (not the
    workers) decides what to do; it kills the workers on its way out;
  * die with the command (PR_SET_PDEATHSIG on Linux; elsewhere they exit when their
    pipe closes), so a `kill -9` of `qbsd index` leaves no orphan holding its lock;
  * write nothing to the command's stdout (it is /dev/null for them) and, unless
    asked to keep it, nothing to its stderr: decoders print notes on damaged files,
    and the command's stderr carries exactly one line per failure.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError
from .settings import DEFAULT_TIMEOUT
from .songinfo import SongInfo, read_tags

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .model import TagModel

#: How long workers may take to exit once their pipe is closed, before they are killed.
_EXIT_GRACE_S = 2.0
#: The longest single wait for a worker's answer; deadlines further away are waited for in
#: several (selectors take no more than about 2**31 ms).
_MAX_WAIT_S = 3600.0


@dataclass(frozen=True)
class Analysis:
    """The outcome for one file: a vector (n_tags,), seconds analysed, the file's own
    tags and length (`songinfo.read_tags`) and its audio fingerprint, or an error."""

    path: str
    vector: np.ndarray | None = None
    duration: float = 0.0
    error: str | None = None
    tags: SongInfo | None = None
    #: the audio fingerprint of the file's first 30 s (fingerprint.py), None when too short
    fingerprint: bytes | None = None


#: What a file that took too long fails with; `timed_out_after` reads the limit back, so
#: that a later run with a longer --timeout retries it.
_TIMED_OUT = "timed out after {:g} s"


def timed_out_reason(timeout: float) -> str:
    """The failure reason of a file that took longer than `timeout` seconds."""
    return _TIMED_OUT.format(timeout)


def timed_out_after(reason: str) -> float | None:
    """The time limit a failure `reason` says the file exceeded, or None for other reasons."""
    prefix, suffix = _TIMED_OUT.split("{:g}")
    if reason.startswith(prefix) and reason.endswith(suffix):
        try:
            return float(reason[len(prefix) : -len(suffix)])
        except ValueError:
            return None
    return None


def analyse_one(model: TagModel, path: str, max_segments: int | None) -> Analysis:
    """Analyse `path` with a TagModel; never raises for a bad file (the reason is in .error)."""
    try:
        result = model.analyse(path, max_segments)
    except AudioError as error:  # TooShortError too
        return Analysis(path, error=str(error))
    except MemoryError:
        return Analysis(path, error="out of memory while analysing")
    except Exception as error:  # one bad file must not stop a batch
        return Analysis(path, error=f"unexpected error: {type(error).__name__}: {error}")
    if not np.all(np.isfinite(result.vector)):
        return Analysis(path, error="analysis produced invalid values (NaN or infinity)")
    # Read here, where the file was just decoded (it is in the page cache), so that the
    # index's one writer only stores it, in the batch commit of the song's vector.
    return Analysis(path, result.vector, result.duration, tags=read_tags(path), fingerprint=result.fingerprint)


# --------------------------------------------------------------------------- the worker side


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _detach_std_streams(keep_stderr: bool) -> None:
    """Fresh stdio for a forked worker: /dev/null for stdin and stdout (and stderr unless
    kept), and new Python file objects, so that the worker never flushes the command's
    buffered output or waits on a lock another thread of the command held at fork time."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if not keep_stderr:
        os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _worker_main(
    connection: Connection,
    parent: int,
    model_path: str | None,
    max_segments: int | None,
    keep_stderr: bool,
    prepare: Callable[[], None] | None,
) -> None:
    """Receive paths, send Analysis results, until the pipe closes or None arrives."""
    _die_with_parent(parent)
    _detach_std_streams(keep_stderr)
    if prepare is not None:
        prepare()
    import warnings

    warnings.simplefilter("ignore")  # e.g. numpy's on odd input: the reason is in the result
    from .model import TagModel

    try:
        model = TagModel(model_path, threads=1)
    except Exception as error:  # the command loaded it already, so this is rare
        model, load_error = None, f"cannot load the model in a worker: {error}"
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        if model is None:
            result = Analysis(path, error=load_error)
        else:
            result = analyse_one(model, path, max_segments)
        try:
            connection.send(result)
        except (OSError, ValueError):
            return


class _Worker:
    """One forked worker process and the command's end of its pipe."""

    def __init__(
        self,
        model_path: str | None,
        max_segments: int | None,
        keep_stderr: bool,
        prepare: Callable[[], None] | None = None,
    ):
        from multiprocessing import Pipe

        ours, theirs = Pipe(duplex=True)
        parent = os.getpid()
        # SIGINT stays blocked across the fork, so that a Ctrl-C cannot hit the child
        # before it has set SIGINT to ignored; the command gets it as soon as it unblocks.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the command's code
                status = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
                    ours.close()
                    _worker_main(theirs, parent, model_path, max_segments, keep_stderr, prepare)
                except BaseException:
                    status = 1
                finally:
                    os._exit(status)
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        theirs.close()
        self.pid = pid
        self.connection = ours
        self.task: tuple[int, str, float] | None = None  # (position, path, deadline)
        self.alive = True
        self.status: int | None = None

    def send(self, position: int, path: str, timeout: float | None) -> None:
        deadline = time.monotonic() + timeout if timeout else float("inf")
        self.task = (position, path, deadline)
        self.connection.send(path)

    def kill(self) -> None:
        """SIGKILL the worker and reap it."""
        if not self.alive:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.reap(block=True)

    def reap(self, block: bool) -> int | None:
        """The wait status once the process has ended (None if it is still running)."""
        if not self.alive:
            return self.status
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return None
        self.alive = False
        self.status = status
        self.connection.close()
        return status

    def death_reason(self) -> str:
        """Why the worker ended, for the file it was analysing."""
        status = self.reap(block=True)
        if status is not None and os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            hint = " (out of memory?)" if number == signal.SIGKILL else ""
            return f"the analysis process was killed by {name}{hint}"
        code = os.WEXITSTATUS(status) if status is not None else "?"
        return f"the analysis process exited unexpectedly (status {code})"


class AnalysisPool:
    """`jobs` worker processes that analyse files with a per-file time limit.

    Start it before anything else in the command starts threads (a progress bar):
    workers are forked. Use as a context manager; leaving it (normally, on an error or
    on Ctrl-C) ends every worker.
    """

    def __init__(
        self,
        model_path: str | None,
        jobs: int,
        max_segments: int | None,
        timeout: float | None = DEFAULT_TIMEOUT,
        keep_stderr: bool = False,
        prepare: Callable[[], None] | None = None,
    ):
        self.model_path = model_path
        self.prepare = prepare  # called first in every worker process
        self.max_segments = max_segments
        self.timeout = timeout if timeout and timeout > 0 else None
        self.keep_stderr = keep_stderr
        self.workers: list[_Worker | None] = []
        self.size = max(1, jobs)
        try:
            for _ in range(self.size):
                self.workers.append(self._start())
        except BaseException:
            self.close(kill=True)
            raise

    def _start(self) -> _Worker:
        return _Worker(self.model_path, self.max_segments, self.keep_stderr, self.prepare)

    def __enter__(self) -> AnalysisPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(kill=kind is not None)

    def close(self, kill: bool = False) -> None:
        """End the workers: politely when idle (they exit when told), else with SIGKILL."""
        workers, self.workers = [worker for worker in self.workers if worker is not None], []
        if kill:
            for worker in workers:
                worker.kill()
            return
        for worker in workers:
            if worker.alive:
                try:
                    worker.connection.send(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + _EXIT_GRACE_S
        for worker in workers:
            while worker.alive and worker.reap(block=False) is None:
                if time.monotonic() > deadline:
                    worker.kill()
                    break
                time.sleep(0.002)

    def _retire(self, worker: _Worker) -> None:
        """Kill a worker that timed out or died; a new one starts when there is work for it."""
        worker.kill()
        self.workers[self.workers.index(worker)] = None

    def analyse(
        self, paths: Iterable[str], ordered: bool = True, idle: float | None = None
    ) -> Iterator[Analysis | None]:
        """Yield an Analysis per path: in input order, or (ordered=False) as each finishes.
        With `idle` seconds, also yield None whenever that long passes without a result
        (a caller can commit its finished work while a slow file is being analysed)."""
        from multiprocessing.connection import wait

        paths = list(paths)
        waiting = deque(enumerate(paths))
        done: dict[int, Analysis] = {}
        requeued: set[int] = set()
        delivered = 0
        next_out = 0
        last_yield = time.monotonic()
        try:
            while delivered < len(paths):
                # Hand a file to every idle worker (starting replacements as needed).
                for slot, worker in enumerate(self.workers):
                    if not waiting:
                        break
                    if worker is None:
                        worker = self.workers[slot] = self._start()
                    if worker.task is None:
                        position, path = waiting.popleft()
                        try:
                            worker.send(position, path, self.timeout)
                        except (OSError, ValueError):
                            # It died while idle (killed from outside): the file goes to its
                            # replacement, once; a second such death is reported for the file.
                            worker.task = None
                            reason = worker.death_reason()
                            self._retire(worker)
                            if position in requeued:
                                done[position] = Analysis(path, error=reason)
                            else:
                                requeued.add(position)
                                waiting.appendleft((position, path))
                if ordered:
                    while next_out in done:
                        yield done.pop(next_out)
                        next_out += 1
                        delivered += 1
                        last_yield = time.monotonic()
                else:
                    for position in list(done):
                        yield done.pop(position)
                        delivered += 1
                        last_yield = time.monotonic()
                busy = [worker for worker in self.workers if worker is not None and worker.task is not None]
                if not busy:
                    continue
                now = time.monotonic()
                wake = min(worker.task[2] for worker in busy if worker.task is not None)
                if idle is not None:
                    if now - last_yield >= idle:
                        yield None
                        last_yield = now = time.monotonic()
                    wake = min(wake, last_yield + idle)
                # capped: a huge --timeout (1e308) must not overflow the wait; the loop waits again
                remaining = None if wake == float("inf") else min(max(0.0, wake - now), _MAX_WAIT_S)
                ready = set(wait([worker.connection for worker in busy], remaining))
                for worker in busy:
                    assert worker.task is not None  # busy: each has a task until its result is taken below
                    position, path, deadline = worker.task
                    if worker.connection in ready:
                        try:
                            result = worker.connection.recv()
                        except (EOFError, OSError):
                            result = Analysis(path, error=worker.death_reason())
                            self._retire(worker)
                        worker.task = None
                        done[position] = result
                    elif time.monotonic() >= deadline:
                        assert self.timeout is not None  # a deadline is finite only with a timeout
                        done[position] = Analysis(path, error=timed_out_reason(self.timeout))
                        worker.task = None
                        self._retire(worker)
        except BaseException:
            # Ctrl-C or an error in the caller: busy workers may run for a long time.
            self.close(kill=True)
            raise
