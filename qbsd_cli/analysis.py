"""Analyse many files with the tag model, in parallel worker processes.

Each worker loads the ONNX model once with one onnxruntime thread, so `--jobs N`
uses N cores without oversubscription. Results come back in input order as
soon as they are ready; a file that fails yields its one-line reason instead
of a vector, and the batch goes on.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class Analysis:
    """The outcome for one file: a vector (n_tags,) and seconds analysed, or an error."""

    path: str
    vector: np.ndarray | None = None
    duration: float = 0.0
    error: str | None = None


_worker_model = None


def _load_worker_model(model_path: str | None, max_segments: int | None) -> None:
    global _worker_model, _worker_max_segments
    from .model import TagModel

    _worker_model = TagModel(model_path, threads=1)
    _worker_max_segments = max_segments


_worker_max_segments: int | None = None


def _analyse_one(path: str) -> Analysis:
    from .audio import AudioError
    from .features import TooShortError

    try:
        result = _worker_model.analyse(path, _worker_max_segments)
    except (AudioError, TooShortError) as error:
        return Analysis(path, error=str(error))
    except MemoryError:
        return Analysis(path, error="out of memory while analysing")
    except Exception as error:  # one bad file must not stop a batch
        return Analysis(path, error=f"unexpected error: {type(error).__name__}: {error}")
    return Analysis(path, result.vector, result.duration)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def analyse_files(paths: Iterable[str], model_path: str | None, jobs: int,
                  max_segments: int | None) -> Iterator[Analysis]:
    """Yield an Analysis per path, in order. jobs=1 runs in this process.
    max_segments: 30-second segments analysed per file (None: the whole file)."""
    paths = list(paths)
    if not paths:
        return
    if jobs <= 1 or len(paths) == 1:
        _load_worker_model(model_path, max_segments)
        for path in paths:
            yield _analyse_one(path)
        return
    with ProcessPoolExecutor(min(jobs, len(paths)), initializer=_load_worker_model,
                             initargs=(model_path, max_segments)) as pool:
        yield from pool.map(_analyse_one, paths, chunksize=1)
