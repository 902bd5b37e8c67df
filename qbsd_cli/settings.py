"""Defaults shared by the library and the command line; light to import (no numpy)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Seconds one file may take before its worker is killed and the file fails. The
#: default analysis (at most 2 minutes of audio) takes well under a second per file;
#: `--full` on a very long file takes longer (about 1 s per 5 minutes of audio).
DEFAULT_TIMEOUT = 120.0
#: Length of the segments a file is analysed in, in seconds: the training clips' length.
SEGMENT_SECONDS = 30.0
#: The vector cosine at and above which two songs of a model are one recording, for a model
#: whose metadata names none (`qbsd.duplicate_cosine`, written by export and measured by
#: benchmarks/duplicates.py): the strictest measured for any model (the fast model's).
DEFAULT_DUPLICATE_COSINE = 0.997
#: Segments analysed per file by default (evenly spread; None would be the whole file):
#: up to 2 minutes per song; the model card has the measurement behind it.
DEFAULT_MAX_SEGMENTS = 4


def default_index_folder() -> Path:
    """$QBSD_INDEX, else $XDG_DATA_HOME/qbsd, else ~/.local/share/qbsd."""
    if os.environ.get("QBSD_INDEX"):
        return Path(os.environ["QBSD_INDEX"])
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "qbsd"


def default_jobs() -> int:
    """Worker processes when none are asked for: one per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def max_segments(full: bool) -> int | None:
    """Segments analysed per file: all of it with `--full` (None), else DEFAULT_MAX_SEGMENTS."""
    return None if full else DEFAULT_MAX_SEGMENTS


@dataclass(frozen=True)
class AnalysisSettings:
    """How each file is analysed, for `qbsd tag` and `qbsd index` alike: at most
    `max_segments` segments of SEGMENT_SECONDS (None: all of it), within `timeout` seconds
    (None: no limit), the workers' stderr (decoders' notes) kept when `keep_stderr`."""

    max_segments: int | None = DEFAULT_MAX_SEGMENTS
    timeout: float | None = DEFAULT_TIMEOUT
    keep_stderr: bool = False

    @classmethod
    def of(
        cls, full: bool = False, timeout: float | None = DEFAULT_TIMEOUT, keep_stderr: bool = False
    ) -> AnalysisSettings:
        """The settings of the options `--full`, `--timeout` (0 or None: no limit) and --debug."""
        return cls(max_segments(full), timeout if timeout and timeout > 0 else None, keep_stderr)


def cluster_address(address: str | None) -> str | None:
    """The Dask scheduler to analyse on: `address`, else $QBSD_CLUSTER, else None (here)."""
    return address or os.environ.get("QBSD_CLUSTER") or None
