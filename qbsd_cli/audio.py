"""Decode an audio file into mono float32 samples at the analysis rate.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus, aiff and mp3 without
spawning anything; librosa/audioread is only tried for formats it cannot open
(m4a/aac, wma, ...), and is imported only then, because it is slow to import.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError

if TYPE_CHECKING:
    from soundfile import SoundFile

# Formats libsndfile decodes itself; a file of these that it rejects is broken,
# and trying audioread on it would only cost librosa's slow import.
SOUNDFILE_EXTENSIONS = frozenset({".mp3", ".flac", ".ogg", ".oga", ".opus", ".wav", ".wave", ".aif", ".aiff", ".aifc"})
AUDIOREAD_EXTENSIONS = frozenset({".m4a", ".aac", ".wma", ".mp4"})
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | AUDIOREAD_EXTENSIONS


@dataclass(frozen=True)
class DecodedAudio:
    """Mono samples, shape (n_samples,), float32 in [-1, 1], at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)


def is_audio_path(path: str) -> bool:
    """True when the file name has an audio extension we try to decode."""
    return os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 2:
        channels = samples.shape[1]
        with np.errstate(all="ignore"):  # inf or NaN samples (a damaged float file): see _finished
            # a matrix-vector product: 12x faster than mean(axis=1) on (n, 2) float32,
            # which benchmarks/RESULTS.md showed taking 30% of a job's time
            samples = samples @ np.full(channels, 1.0 / channels, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32)


@contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a while: libmpg123 (inside libsndfile)
    prints "Note: Illegal Audio-MPEG-Header ..." lines itself on damaged MP3s, which
    would break `qbsd`'s one-line-per-failure stderr. Errors still arrive as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to silence
        saved = None
    if saved is None:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _open_soundfile(path: str) -> SoundFile:
    """soundfile.SoundFile for `path`. On POSIX the name goes as bytes: soundfile encodes a
    str strictly as UTF-8, which fails for names that are not UTF-8 (surrogate escapes)."""
    import soundfile

    return soundfile.SoundFile(path if os.name == "nt" else os.fsencode(path))


def _read_with_soundfile(path: str) -> tuple[np.ndarray, int]:
    with _c_stderr_silenced(), _open_soundfile(path) as handle:
        sample_rate = handle.samplerate
        samples = handle.read(dtype="float32", always_2d=True)
    return _to_mono(samples), sample_rate


def _read_with_audioread(path: str, sample_rate: int) -> tuple[np.ndarray, int]:
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples, rate = librosa.load(path, sr=sample_rate, mono=True)
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 samples with soxr (the resampler librosa uses by default)."""
    if source_rate == target_rate:
        return samples
    import soxr

    return np.ascontiguousarray(soxr.resample(samples, source_rate, target_rate, quality="HQ"), dtype=np.float32)


#: Samples beyond this magnitude are clipped: no real recording comes near it (decoders
#: give -1..1, with overs up to about 2), but a float file can hold 1e38, whose power
#: spectrum overflows to inf and turns the song vector into NaN.
SAMPLE_LIMIT = 16.0
#: Sample rates outside this range are not audio qbsd can analyse (a damaged header).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: Frames read per call when decoding a segment, scaled down for many channels, so that
#: decoding memory stays near one mono segment whatever the header claims.
_READ_BLOCK_SAMPLES = 1 << 21

_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def stat_reason(path: str, error: OSError) -> str:
    """One-line reason for an os.stat() failure, naming broken links and link loops."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno in (errno.ENOENT, errno.ENOTDIR) and os.path.islink(path):
        return "broken symbolic link (its target does not exist)"
    return error.strerror or str(error)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this st_mode cannot be analysed, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    for test, kind in _FILE_KINDS:
        if test(mode):
            return f"is {kind}, not a regular file"
    return "not a regular file"


def regular_file(path: str) -> os.stat_result:
    """The stat of `path` when it is a regular file (after links); AudioError with the
    reason otherwise (missing, a folder, a FIFO, a device, a link loop). Every path qbsd is
    given, from any source, passes here before anything opens it: opening a FIFO would
    block forever, and a device could stream without end."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise AudioError(stat_reason(path, error)) from None
    except ValueError:  # a NUL in the name
        raise AudioError("not a file name (it holds a NUL character)") from None
    reason = not_regular_reason(info.st_mode)
    if reason:
        raise AudioError(reason)
    return info


def _check_readable(path: str) -> None:
    """Reject anything but a non-empty, readable regular file before any decoder opens it."""
    info = regular_file(path)
    if info.st_size == 0:
        raise AudioError("empty file")
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise AudioError(error.strerror or str(error)) from None


def _check_format(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"unsupported sample rate {rate} Hz (damaged header?)")
    if channels < 1:
        raise AudioError(f"{channels} channels (damaged header?)")


def _soundfile_reason(path: str, error: Exception) -> str:
    reason = str(error).splitlines()[0] if str(error) else "unreadable"
    for name in (path, os.fsencode(path)):
        reason = reason.replace(f"Error opening {name!r}: ", "")
    if reason.startswith("File does not exist"):  # libsndfile's words for a damaged MP3
        reason = "format not recognised or data damaged"
    return reason


def _finished(samples: np.ndarray, rate: int, sample_rate: int) -> DecodedAudio:
    if samples.size == 0:
        raise AudioError("no audio samples")
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    if np.max(np.abs(samples)) > SAMPLE_LIMIT:
        samples = np.clip(samples, -SAMPLE_LIMIT, SAMPLE_LIMIT)
    try:
        resampled = resample(samples, rate, sample_rate)
    except MemoryError:
        raise
    except Exception as error:
        raise AudioError(f"cannot resample from {rate} Hz ({error})") from None
    return DecodedAudio(resampled, sample_rate)


def decode(path: str, sample_rate: int = 22050) -> DecodedAudio:
    """Decode the whole of `path` to mono float32 at `sample_rate` Hz.

    Raises AudioError with a one-line reason for anything that is not readable
    audio: a missing file, a directory, an empty or truncated file, no samples.
    """
    _check_readable(path)
    try:
        samples, rate = _read_with_soundfile(path)
    except Exception as soundfile_error:  # libsndfile raises several types
        reason = _soundfile_reason(path, soundfile_error)
        if os.path.splitext(path)[1].lower() not in AUDIOREAD_EXTENSIONS:
            raise AudioError(f"not decodable audio ({reason})") from None
        try:
            samples, rate = _read_with_audioread(path, sample_rate)
        except Exception:
            raise AudioError(f"not decodable audio ({reason})") from None
    _check_format(rate, 1)
    return _finished(samples, rate, sample_rate)


def segment_starts(total_seconds: float, segment_seconds: float, max_segments: int | None) -> list[float]:
    """Start times (s) of the segments analysed in a file of `total_seconds`.

    The file is cut into consecutive segments of `segment_seconds`; when there are
    more than `max_segments`, that many are taken, evenly spread from the first
    to the last full segment; one alone is taken from the middle, where a song's intro
    and fade-out are furthest. `max_segments=None` keeps them all.
    """
    count = max(1, int(np.ceil(total_seconds / segment_seconds - 1e-9)))
    if max_segments is None or count <= max_segments:
        return [i * segment_seconds for i in range(count)]
    last_start = max(total_seconds - segment_seconds, 0.0)
    if max_segments == 1:
        return [last_start / 2]
    return [last_start * i / (max_segments - 1) for i in range(max_segments)]


def decode_segments(
    path: str, sample_rate: int = 22050, segment_seconds: float = 30.0, max_segments: int | None = None
) -> Iterator[DecodedAudio]:
    """Decode `path` segment by segment (see `segment_starts`), mono at `sample_rate` Hz.

    Only the chosen segments are read (libsndfile seeks), and only one segment is
    in memory at a time, so a 60-minute file costs no more memory than a
    30-second one. Each segment is resampled on its own, exactly as a training
    clip of that length is. Formats that libsndfile cannot read are decoded whole.
    """
    _check_readable(path)
    try:
        with _c_stderr_silenced():
            handle = _open_soundfile(path)
    except Exception as soundfile_error:
        if os.path.splitext(path)[1].lower() not in AUDIOREAD_EXTENSIONS:
            raise AudioError(f"not decodable audio ({_soundfile_reason(path, soundfile_error)})") from None
        whole = decode(path, sample_rate)
        step = int(segment_seconds * sample_rate)
        for start in segment_starts(whole.duration, segment_seconds, max_segments):
            first = int(start * sample_rate)
            yield DecodedAudio(whole.samples[first : first + step], sample_rate)
        return
    with handle:
        rate = handle.samplerate
        _check_format(rate, handle.channels)
        total = handle.frames
        length = int(round(segment_seconds * rate))
        if total > 0:
            starts = segment_starts(total / rate, segment_seconds, max_segments)
        else:  # a stream or a damaged header that does not tell the length: read on to the end
            starts = None
        produced = False
        position = 0.0
        while True:
            if starts is not None:
                if not starts:
                    break
                position = starts.pop(0)
            try:
                with _c_stderr_silenced():
                    if starts is not None and handle.seekable():
                        handle.seek(int(round(position * rate)))
                    samples = _read_mono(handle, length)
            except AudioError:
                raise
            except MemoryError:
                raise AudioError(f"out of memory decoding at {position:.0f} s") from None
            except Exception as error:
                raise AudioError(f"decoding failed at {position:.0f} s ({_soundfile_reason(path, error)})") from None
            if len(samples) == 0:
                if starts is None:
                    break
                continue
            produced = True
            yield _finished(samples, rate, sample_rate)
            if starts is None:
                position += len(samples) / rate
                if len(samples) < length:
                    break
        if not produced:
            raise AudioError("no audio samples")


def _read_mono(handle: SoundFile, frames: int) -> np.ndarray:
    """Up to `frames` frames from the current position, mixed to mono, read in blocks so
    that many channels (or a header that claims a huge length) cannot exhaust memory."""
    block = max(1024, _READ_BLOCK_SAMPLES // max(1, handle.channels))
    parts = []
    remaining = frames
    while remaining > 0:
        wanted = min(block, remaining)
        chunk = handle.read(wanted, dtype="float32", always_2d=True)
        if len(chunk):
            parts.append(_to_mono(chunk))
            remaining -= len(chunk)
        if len(chunk) < wanted:
            break
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
