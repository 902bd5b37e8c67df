"""Per-song MFCC frames cached on disk for training and evaluation.

Frames are computed once per (file, feature parameters, mel basis) and kept as
`.npy` files under a cache folder, so that cross-validation folds, variants and
reruns never decode the audio again.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..audio import decode, decode_segments
from ..features import FeatureParams
from ..logmel import BAND_STATISTICS_DIM, N_MELS
from .file_cache import entry_path


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qbsd", "frames")


def _cache_key(params: FeatureParams, mel_basis: np.ndarray) -> str:
    digest = hashlib.sha1(params.to_json().encode())
    digest.update(np.ascontiguousarray(mel_basis, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def _song_cache_path(folder: str, path: str) -> str:
    """The entry of `path` in `folder`, named by the file's content (file_cache.py)."""
    stat = os.stat(path)
    legacy = hashlib.sha1(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    return entry_path(folder, path, ".npy", legacy)


_worker_front_end = None  # frontends.MfccFrontEnd of a cache worker process


def _init_worker(params: FeatureParams, mel_basis: np.ndarray) -> None:
    from ..frontends import MfccFrontEnd

    global _worker_front_end
    _worker_front_end = MfccFrontEnd(params, mel_basis)


def _save(target: str, values: np.ndarray) -> str:
    """np.save whole to a temporary name, then rename: a stopped run leaves no half file."""
    temporary = target + f".{os.getpid()}.tmp.npy"
    np.save(temporary, values)
    os.replace(temporary, target)
    return target


def _compute_frames(job: tuple[str, str]) -> str:
    path, target = job
    audio = decode(path, _worker_front_end.sample_rate)
    return _save(target, _worker_front_end.extractor.frames(audio.samples))


def _compute_band_statistics(job: tuple[str, str]) -> str:
    from ..settings import SEGMENT_SECONDS

    path, target = job
    rows = []
    for segment in decode_segments(path, _worker_front_end.sample_rate, SEGMENT_SECONDS):
        usable = len(segment.samples) >= 2 * _worker_front_end.params.hop_length  # two frames
        rows.append(
            _worker_front_end.patches_and_bands(segment.samples)[2]
            if usable
            else np.full(BAND_STATISTICS_DIM, np.nan, dtype=np.float32)
        )
    return _save(target, np.array(rows, dtype=np.float32).reshape(-1, BAND_STATISTICS_DIM))


def _frames_per_segment(front_end) -> int:
    from ..settings import SEGMENT_SECONDS

    return 1 + int(SEGMENT_SECONDS * front_end.sample_rate) // front_end.params.hop_length


def segment_band_frames_of(front_end, samples: np.ndarray) -> np.ndarray:
    """(frames_per_segment, 96) float16: one 30 s segment's log-mel time course
    (`front_end.bands`, a frontends.MfccFrontEnd) as the band-frames cache keeps it, NaN
    past the segment's end and throughout a segment too short for two frames;
    frames_per_segment = 1 + 30 s * sample_rate // hop_length."""
    per_segment = _frames_per_segment(front_end)
    bands = np.full((per_segment, N_MELS), np.nan, dtype=np.float16)
    if len(samples) >= 2 * front_end.params.hop_length:
        values = front_end.bands(samples)[:per_segment]
        bands[: len(values)] = values
    return bands


def stacked_band_frames(rows: list[np.ndarray], front_end) -> np.ndarray:
    """A file's segments' rows (`segment_band_frames_of`) as one (n_segments, frames, 96) array."""
    return np.array(rows, dtype=np.float16).reshape(-1, _frames_per_segment(front_end), N_MELS)


def _compute_band_frames(job: tuple[str, str]) -> str:
    from ..settings import SEGMENT_SECONDS

    path, target = job
    rows = [
        segment_band_frames_of(_worker_front_end, segment.samples)
        for segment in decode_segments(path, _worker_front_end.sample_rate, SEGMENT_SECONDS)
    ]
    return _save(target, stacked_band_frames(rows, _worker_front_end))


def _cached(
    folder: str,
    compute,
    paths: list[str],
    params: FeatureParams,
    mel_basis: np.ndarray,
    jobs,
    progress=None,
    mmap: bool = False,
) -> list[np.ndarray]:
    """One .npy per path in `folder`, made by `compute((path, target))` in worker processes
    where missing (resumable: each file is written whole, then renamed); `mmap`: returned
    memory-mapped, read only, rather than loaded."""
    os.makedirs(folder, exist_ok=True)
    targets = [_song_cache_path(folder, path) for path in paths]
    missing = [(path, target) for path, target in zip(paths, targets) if not os.path.exists(target)]
    if missing:
        workers = jobs or os.cpu_count() or 1
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(params, mel_basis)) as pool:
            for done, _ in enumerate(pool.map(compute, missing, chunksize=4), 1):
                if progress:
                    progress(done, len(missing))
    return [np.load(target, mmap_mode="r" if mmap else None) for target in targets]


def _folder(cache_dir: str | None, kind: str, params: FeatureParams, mel_basis: np.ndarray) -> str:
    """The cache folder of one kind of per-file values for these feature parameters; `kind`
    names (and versions) what is computed, so a change to it never reuses old files."""
    return os.path.join(cache_dir or default_cache_dir(), kind + _cache_key(params, mel_basis))


def song_frames(
    paths: list[str],
    params: FeatureParams,
    mel_basis: np.ndarray,
    cache_dir: str | None = None,
    jobs: int | None = None,
    progress=None,
) -> list[np.ndarray]:
    """(n_frames, 39) float32 frames for every path, computed where not cached."""
    return _cached(_folder(cache_dir, "", params, mel_basis), _compute_frames, paths, params, mel_basis, jobs, progress)


def segment_band_statistics(
    paths: list[str],
    params: FeatureParams,
    mel_basis: np.ndarray,
    cache_dir: str | None = None,
    jobs: int | None = None,
) -> list[np.ndarray]:
    """(n_segments, 320) float32 per path: the band statistics of each 30 s segment
    (`MfccFrontEnd.patches_and_bands` of audio.decode_segments' segments, those the model
    analyses; NaN for one too short to summarise), computed where not cached (resumable)."""
    folder = _folder(cache_dir, "band-statistics-v1-", params, mel_basis)
    return _cached(folder, _compute_band_statistics, paths, params, mel_basis, jobs)


def segment_band_frames(
    paths: list[str],
    params: FeatureParams,
    mel_basis: np.ndarray,
    cache_dir: str | None = None,
    jobs: int | None = None,
    progress=None,
) -> list[np.ndarray]:
    """(n_segments, frames_per_segment, 96) float16 per path: the log-mel time course of each
    30 s segment (`MfccFrontEnd.bands`, the input of a band student), frames past a short
    segment's end NaN; frames_per_segment = 1 + 30 s * sample_rate // hop_length (2,584).
    Computed where not cached (resumable); memory-mapped (about 0.5 MB per 30 s)."""
    folder = _folder(cache_dir, "band-frames-v1-", params, mel_basis)
    return _cached(folder, _compute_band_frames, paths, params, mel_basis, jobs, progress, mmap=True)
