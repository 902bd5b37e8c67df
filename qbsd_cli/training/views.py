"""Augmented views of the training audio, seen alike by the teachers and the band student
(issue 20, item 2: "a patient, consistent teacher").

The band student learns to estimate the teachers' outputs of each 3 s window. Trained on
the original audio only, it estimates them clearly better on the clips it trained on than
on held-out ones (per-tag correlation with the teachers' tags 0.94 against 0.87 on the
folds), which suggested it had learnt its windows rather than the function. (Measured since:
four views of each clip do not narrow that gap, 0.869 held out, while twice the filters do;
models/README.md.) A *view* is a file's audio changed
the way real libraries differ (level, EQ, pitch and tempo, noise, lossy re-encoding); the
teachers and the student's front end both analyse the same changed audio, so the student
learns what the teachers make of it (Beyer et al., CVPR 2022: teacher and student see the
same view).

A view of a file is made segment by segment, as the band-frames cache and the teachers'
outputs are (`audio.decode_segments`, 30 s each): the segment decoded at the student's
22.05 kHz, changed by `augment` with a random draw fixed by the view number, the file's
content and the segment number, then
- its band frames (`frontends.MfccFrontEnd.bands`, what the band student sees), and
- the teachers' outputs of its 3 s patches (`teacher.segment_outputs`, after resampling
  the changed audio to the teachers' 16 kHz)
are cached together under `<cache>/views-v1-<key>/view<k>/`, one file's band frames as
`.npy` (memory-mapped in training) and its teacher outputs as `.npz`, written whole and
renamed, so a stopped run resumes at the next file. Views are made by
`python -m qbsd_cli.training.views` (see `main`) or on demand by `band_student.band_data`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..features import FeatureParams

#: The cache folder's version: bump it when what a view contains changes.
VERSION = "views-v1-"


@dataclass(frozen=True)
class Augmentation:
    """How far a view's audio may move from the file's; each value is drawn uniformly from
    its range, per 30 s segment."""

    #: level change in dB (the log-mel is not level invariant, and libraries are not level)
    gain_db: tuple[float, float] = (-10.0, 2.0)
    #: spectral tilt in dB per octave around 1 kHz (a bright or a dull master)
    tilt_db_per_octave: tuple[float, float] = (-1.5, 1.5)
    #: playback-speed factor: pitch and tempo change together by resampling (a few percent)
    speed: tuple[float, float] = (0.96, 1.04)
    #: share of segments with white noise added, and its signal-to-noise ratio in dB
    noise_share: float = 0.4
    noise_snr_db: tuple[float, float] = (20.0, 45.0)
    #: share of segments re-encoded lossily, half as MP3 and half as Ogg Vorbis, and the
    #: libsndfile compression level (0 best, 1 smallest: about 24 kbit/s MP3 at 0.9)
    codec_share: float = 0.5
    codec_compression: tuple[float, float] = (0.5, 0.95)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def augment(
    samples: np.ndarray, sample_rate: int, rng: np.random.Generator, augmentation: Augmentation = Augmentation()
) -> np.ndarray:
    """One view of mono float32 `samples` at `sample_rate` Hz: speed, tilt, gain (clipped to
    [-1, 1] as a real file would be), noise, then lossy re-encoding, each drawn from
    `rng`. The result is float32, as long as the input when slowed down (cut), shorter when
    sped up (so a patch's time means the same in the view's band frames and teacher
    outputs: both are computed from this array)."""
    from ..audio import resample

    n = len(samples)
    out = np.asarray(samples, dtype=np.float32)
    speed = _uniform(rng, augmentation.speed)
    if n > 1 and abs(speed - 1.0) > 1e-4:
        # read at `speed` times the rate: pitch and tempo both scale by `speed`
        out = resample(out, round(sample_rate * speed), sample_rate)[:n]
    tilt = _uniform(rng, augmentation.tilt_db_per_octave)
    if len(out) > 1:
        spectrum = np.fft.rfft(out)
        frequencies = np.maximum(np.fft.rfftfreq(len(out), 1.0 / sample_rate), 20.0)
        spectrum *= (10.0 ** (tilt * np.log2(frequencies / 1000.0) / 20.0)).astype(np.float32)
        out = np.fft.irfft(spectrum, n=len(out)).astype(np.float32)
    out = out * np.float32(10.0 ** (_uniform(rng, augmentation.gain_db) / 20.0))
    noisy = rng.random() < augmentation.noise_share
    snr = _uniform(rng, augmentation.noise_snr_db)
    if noisy and len(out):
        power = float(np.mean(out.astype(np.float64) ** 2))
        if power > 0:
            noise = rng.standard_normal(len(out)) * np.sqrt(power / 10.0 ** (snr / 10.0))
            out = out + noise.astype(np.float32)
    out = np.clip(out, -1.0, 1.0)
    encoded = rng.random() < augmentation.codec_share
    as_mp3 = rng.random() < 0.5
    compression = _uniform(rng, augmentation.codec_compression)
    if encoded and len(out) >= sample_rate // 10:
        out = _reencoded(out, sample_rate, "MP3" if as_mp3 else "OGG", compression)
    return np.ascontiguousarray(out, dtype=np.float32)


def _reencoded(samples: np.ndarray, sample_rate: int, container: str, compression: float) -> np.ndarray:
    """`samples` encoded to MP3 or Ogg Vorbis in memory by libsndfile and decoded again, cut
    or padded to their length (MP3 adds the encoder's delay and padding)."""
    import soundfile

    subtype = "MPEG_LAYER_III" if container == "MP3" else "VORBIS"
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=container, subtype=subtype, compression_level=compression)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    decoded = decoded[: len(samples)]
    return np.pad(decoded, (0, len(samples) - len(decoded)))


def segment_rng(view: int, content_key: str, segment: int) -> np.random.Generator:
    """The draw of one segment of one view of one file: fixed by the view number, the
    file's content (file_cache.content_key) and the segment number, so a view recomputed
    after a lost cache is the same view."""
    return np.random.default_rng([view, int(content_key, 16) % (1 << 63), segment])


@dataclass(frozen=True)
class ViewJob:
    path: str
    view: int
    frames_target: str
    outputs_target: str


_worker: dict = {}  # per worker process: the student's front end and the teachers


def _init_worker(params: FeatureParams, mel_basis: np.ndarray, teacher_dir: str, augmentation: Augmentation) -> None:
    from ..frontends import MfccFrontEnd
    from .teacher import open_teachers

    _worker.update(
        front_end=MfccFrontEnd(params, mel_basis), teachers=open_teachers(teacher_dir), augmentation=augmentation
    )


def file_view(job: ViewJob) -> str:
    """Compute and cache one view of one file (the worker's front end and teachers); returns
    its outputs file. A file that cannot be decoded gets an outputs file with its `error`."""
    from ..audio import AudioError, decode_segments, resample
    from ..logmel import SAMPLE_RATE as TEACHER_RATE
    from ..settings import SEGMENT_SECONDS
    from .feature_cache import _save, segment_band_frames_of, stacked_band_frames
    from .file_cache import content_key
    from .teacher import MIN_SEGMENT_SECONDS, _save_atomic, segment_outputs

    front_end = _worker["front_end"]
    rate = front_end.sample_rate
    key = content_key(job.path)
    frames, outputs = [], []
    seconds = 0.0
    try:
        for number, segment in enumerate(decode_segments(job.path, rate, SEGMENT_SECONDS)):
            seconds += segment.duration
            view = augment(segment.samples, rate, segment_rng(job.view, key, number), _worker["augmentation"])
            frames.append(segment_band_frames_of(front_end, view))
            if number > 0 and segment.duration < MIN_SEGMENT_SECONDS:
                continue
            outputs.append(segment_outputs(resample(view, rate, TEACHER_RATE), number, _worker["teachers"]))
    except AudioError as error:
        _save_atomic(job.outputs_target, {"path": np.array(job.path), "error": np.array(str(error))})
        return job.outputs_target
    # the band frames are written first: an outputs file marks a finished view of the file
    _save(job.frames_target, stacked_band_frames(frames, front_end))
    arrays = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
    arrays.update(path=np.array(job.path), seconds=np.float64(seconds), view=np.int64(job.view))
    _save_atomic(job.outputs_target, arrays)
    return job.outputs_target


def cache_folder(
    cache_dir: str, params: FeatureParams, mel_basis: np.ndarray, teacher_dir: str, augmentation: Augmentation
) -> str:
    """`cache_dir`/views-v1-<key>: the key covers the feature parameters, the mel basis, the
    teachers' files and the augmentation's ranges, so a change to any computes anew."""
    digest = hashlib.sha1(params.to_json().encode())
    digest.update(np.ascontiguousarray(mel_basis, dtype=np.float32).tobytes())
    digest.update(repr(sorted(asdict(augmentation).items())).encode())
    from .teacher import OUTPUT_TEACHERS

    for name in OUTPUT_TEACHERS:
        info = os.stat(os.path.join(teacher_dir, f"{name}.onnx"))
        digest.update(f"{name}:{info.st_size}".encode())
    return os.path.join(cache_dir, VERSION + digest.hexdigest()[:12])


def _targets(folder: str, path: str, view: int) -> tuple[str, str]:
    """(band frames file, teacher outputs file) of one view of `path`, named by its content."""
    from .file_cache import entry_path

    view_folder = os.path.join(folder, f"view{view}")
    return entry_path(view_folder, path, ".npy"), entry_path(view_folder, path, ".npz")


def compute_views(
    paths: list[str],
    views: int,
    cache_dir: str,
    params: FeatureParams,
    mel_basis: np.ndarray,
    teacher_dir: str,
    augmentation: Augmentation = Augmentation(),
    jobs: int = 1,
    log=print,
) -> str:
    """Views 1..`views` of every path, computed where not cached (view by view, so a
    stopped run leaves whole views behind it); returns the cache folder."""
    folder = cache_folder(cache_dir, params, mel_basis, teacher_dir, augmentation)
    for view in range(1, views + 1):
        os.makedirs(os.path.join(folder, f"view{view}"), exist_ok=True)
        missing = []
        for path in paths:
            frames_target, outputs_target = _targets(folder, path, view)
            if not os.path.exists(outputs_target):
                missing.append(ViewJob(path, view, frames_target, outputs_target))
        if not missing:
            continue
        log(f"view {view}: {len(missing)} of {len(paths)} files to compute ({folder}) ...")
        started = time.perf_counter()
        with ProcessPoolExecutor(
            max(jobs, 1), initializer=_init_worker, initargs=(params, mel_basis, teacher_dir, augmentation)
        ) as pool:
            for done, _ in enumerate(pool.map(file_view, missing, chunksize=2), 1):
                if done % 50 == 0 or done == len(missing):
                    elapsed = time.perf_counter() - started
                    log(f"  view {view}: {done}/{len(missing)} files in {elapsed / 60:.1f} min")
    return folder


def load_view(folder: str, path: str, view: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(band frames (n_segments, frames, 96) float16 memory-mapped, teacher outputs as
    `teacher.file_outputs` gives them) of one view of `path`, or None when not computed or
    the file cannot be decoded."""
    frames_target, outputs_target = _targets(folder, path, view)
    if not os.path.exists(outputs_target):
        return None
    with np.load(outputs_target) as data:
        if "error" in data.files:
            return None
        outputs = {key: data[key] for key in data.files}
    return np.load(frames_target, mmap_mode="r"), outputs


def main(argv: list[str] | None = None) -> int:
    """`python -m qbsd_cli.training.views --data DIR --views N [--corpus] [--cache DIR]`:
    compute (or resume) views 1..N of the 4Q clips, and with --corpus of the corpus too."""
    from .accurate import TEACHER_DIR
    from .corpus import DEFAULT_CACHE
    from .export import librosa_mel_basis
    from .feature_cache import default_cache_dir
    from .teacher import corpus_paths, moods4q_paths

    parser = argparse.ArgumentParser(prog="python -m qbsd_cli.training.views", description=main.__doc__)
    parser.add_argument("--data", required=True, help="the moods4q folder (metadata.csv, audio/)")
    parser.add_argument("--views", type=int, default=1, help="views per file (numbered from 1)")
    parser.add_argument("--corpus", action="store_true", help="also the unlabelled corpus (corpus.py)")
    parser.add_argument("--cache", default=None, help="cache folder (default: qbsd's frames cache)")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        paths = moods4q_paths(args.data)
    except OSError as error:
        parser.error(f"{error.filename}: {error.strerror}")
    if args.corpus:
        try:
            paths += corpus_paths(DEFAULT_CACHE)
        except OSError:
            parser.error(f"no corpus in {DEFAULT_CACHE}: run `python -m qbsd_cli.training.corpus fetch` first")
    params = FeatureParams()
    folder = compute_views(
        paths,
        args.views,
        args.cache or default_cache_dir(),
        params,
        librosa_mel_basis(params),
        str(TEACHER_DIR),
        jobs=args.jobs,
        log=lambda text: print(time.strftime("%Y-%m-%d %H:%M:%S"), text, flush=True),
    )
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
