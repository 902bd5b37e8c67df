"""A compact audio fingerprint, so that two files count as one recording only when their
audio agrees (ranking.duplicate_groups, Selection), never because their tags say so.

Computed from the log-mel the front end already has for the first analysed segment (the
file's first 30 s; `model.TagModel.analyse`): 96 Slaney mel bands, log10(10000 m + 1),
at the model's sample rate with a hop of 256 (the fast model's `mfcc-bands` at 22.05 kHz,
11.6 ms a frame; the accurate model's `musicnn-logmel` at 16 kHz, 16 ms). In the manner
of Haitsma and Kalker (2002):

1. the mel power is summed into COARSE_BANDS bands spaced evenly on a log scale between
   LOW_HZ and HIGH_HZ (a range that survives low-bit-rate MP3, which cuts the highs, and
   any resampling to 16 kHz or more);
2. leading silence is skipped: the fingerprint starts at the first frame whose energy is
   within SILENCE_DB of the segment's loudest (so added or removed silence barely moves it);
3. each band's energy is averaged over SMOOTH_SECONDS and sampled every STEP_SECONDS for
   SECONDS (overlapping windows: a file shifted by a fraction of a step changes few bits);
4. bit m of step n is the sign of the change, from step n-1 to n, of the difference
   between the log energies of bands m and m+1: BITS (16) bits a step, independent of
   loudness and of any fixed equalisation.

About 10.8 steps a second for 20 s: 430 bytes plus a 4-byte header (version, bits a step,
step in ms at 0.1 ms resolution), which `bit_error_rate` compares so that fingerprints of
different kinds (another model's sample rate, another version) are never compared.

Two fingerprints are compared by their bit error rate, the lowest over every offset of up
to SEARCH_SECONDS either way (a few hundred ms of silence or audio added or trimmed at the
start), over at least MIN_OVERLAP_SECONDS of overlap. Re-encodes of one recording give a
low rate; different recordings give about 0.5 (`MATCH_BER`, measured in
benchmarks/DUPLICATES.md). Pure numpy, deterministic: the same samples give the same
bytes in a local worker and on a Dask worker.
"""

from __future__ import annotations

import base64
import binascii
import struct
from functools import lru_cache
from typing import TypeGuard

import numpy as np

from .logmel import _hz_to_mel, _mel_to_hz

VERSION = 1
LOW_HZ = 300.0
HIGH_HZ = 5000.0
COARSE_BANDS = 17
BITS = COARSE_BANDS - 1  # 16: one uint16 a step
STEP_SECONDS = 0.093
SMOOTH_SECONDS = 0.37
SECONDS = 20.0
#: A fingerprint needs at least this much audio after the leading silence (else None).
MIN_SECONDS = 5.0
SILENCE_DB = 40.0
#: A fingerprint whose steps are mostly this far below the loudest is mostly silence: None.
QUIET_DB = 60.0
SEARCH_SECONDS = 1.5
MIN_OVERLAP_SECONDS = 5.0
#: Two fingerprints whose bit error rate is at most this are one recording (measured by
#: `python benchmarks/duplicates.py --fingerprints`, benchmarks/DUPLICATES.md).
MATCH_BER = 0.35

_HEADER = struct.Struct("<BBH")
#: A fingerprint of SECONDS is about 434 bytes; anything far outside is not one of ours.
MAX_BYTES = 4096


@lru_cache(maxsize=8)
def _coarse_bands(sample_rate: int, n_mels: int) -> tuple[int, int, np.ndarray]:
    """(first, end, starts): the mel bands first..end-1 (by their centres) fall within
    LOW_HZ..HIGH_HZ, and coarse band k sums those from starts[k] (relative to first) to the
    next start; the mel bands are in frequency order, so each coarse band is a run of them."""
    top = _hz_to_mel(np.array([sample_rate / 2.0]))[0]
    centres = _mel_to_hz(np.linspace(0.0, top, n_mels + 2))[1:-1]
    edges = np.geomspace(LOW_HZ, min(HIGH_HZ, sample_rate / 2.0), COARSE_BANDS + 1)
    which = np.searchsorted(edges, centres, side="right") - 1  # coarse band of each mel band
    inside = np.nonzero((which >= 0) & (which < COARSE_BANDS))[0]
    first, end = int(inside[0]), int(inside[-1]) + 1
    starts = np.searchsorted(which[first:end], np.arange(COARSE_BANDS))
    if len(np.unique(starts)) != COARSE_BANDS:  # an empty coarse band: too few mel bands
        raise ValueError(f"{n_mels} mel bands at {sample_rate} Hz are too few for the fingerprint")
    return first, end, starts


def _step_frames(frames_per_second: float) -> int:
    return max(1, int(round(STEP_SECONDS * frames_per_second)))


def compute(log_mel: np.ndarray, sample_rate: int, hop_length: int) -> bytes | None:
    """The fingerprint of a segment's log-mel (n_frames, n_mels), log10(10000 m + 1) of Slaney
    mel bands over 0..sample_rate/2, frames every hop_length samples; None when the segment
    holds less than MIN_SECONDS of sound."""
    log_mel = np.asarray(log_mel)
    if log_mel.ndim != 2 or not len(log_mel):
        return None
    fps = sample_rate / hop_length
    step = _step_frames(fps)
    first, end, starts = _coarse_bands(int(sample_rate), log_mel.shape[1])
    # the mel power back from log10(10000 m + 1), only in the bands used
    power = np.maximum(np.expm1(log_mel[:, first:end].astype(np.float64) * np.log(10.0)), 0.0) / 10000.0
    energy = np.add.reduceat(power, starts, axis=1)  # (n, COARSE_BANDS)
    # smoothed over SMOOTH_SECONDS (a moving average, centred), as a running sum
    width = max(1, int(round(SMOOTH_SECONDS * fps)))
    padded = np.concatenate([np.zeros((1, COARSE_BANDS)), np.cumsum(energy, axis=0)])
    half = width // 2
    lo = np.clip(np.arange(len(energy)) - half, 0, len(energy))
    hi = np.clip(np.arange(len(energy)) - half + width, 0, len(energy))
    smooth = (padded[hi] - padded[lo]) / np.maximum(hi - lo, 1)[:, None]
    loudness = smooth.sum(axis=1)
    peak = float(loudness.max())
    if not peak > 0:
        return None
    sounding = np.nonzero(loudness >= peak * 10.0 ** (-SILENCE_DB / 10.0))[0]
    start = int(sounding[0])
    picked = np.arange(start, len(smooth), step)[: int(round(SECONDS / (step / fps))) + 1]
    if len(picked) - 1 < MIN_SECONDS * fps / step:
        return None
    if np.mean(loudness[picked] < peak * 10.0 ** (-QUIET_DB / 10.0)) > 0.5:
        return None
    floor = peak * 10.0 ** (-QUIET_DB / 10.0) / COARSE_BANDS
    levels = np.log(smooth[picked] + floor)
    across = levels[:, :-1] - levels[:, 1:]  # (steps, BITS)
    bits = (across[1:] - across[:-1]) > 0
    words = (bits.astype(np.uint16) << np.arange(BITS, dtype=np.uint16)).sum(axis=1, dtype=np.uint16)
    step_code = int(round(step / fps * 10000))  # 0.1 ms
    return _HEADER.pack(VERSION, BITS, step_code) + words.astype("<u2").tobytes()


def is_valid(data: object) -> TypeGuard[bytes | bytearray]:
    """Whether `data` is a fingerprint this version can compare (bytes, a known header, a
    whole number of steps, a sane length)."""
    if not isinstance(data, (bytes, bytearray)) or not _HEADER.size < len(data) <= MAX_BYTES:
        return False
    version, bits, step_code = _HEADER.unpack_from(data)
    return version == VERSION and bits == BITS and step_code > 0 and (len(data) - _HEADER.size) % 2 == 0


@lru_cache(maxsize=1)
def _popcount() -> np.ndarray:
    return np.unpackbits(np.arange(1 << 16, dtype=">u2").view(np.uint8)).reshape(-1, 16).sum(axis=1).astype(np.uint8)


def _bit_count(words: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint16 (numpy >= 2 counts them itself)."""
    return np.bitwise_count(words) if hasattr(np, "bitwise_count") else _popcount()[words]


def _words(data: bytes | bytearray) -> np.ndarray:
    return np.frombuffer(data, dtype="<u2", offset=_HEADER.size).astype(np.uint16)


def bit_error_rate(a: bytes | None, b: bytes | None) -> float | None:
    """The lowest share of differing bits between two fingerprints over every offset of up
    to SEARCH_SECONDS, where they overlap by MIN_OVERLAP_SECONDS or more; None when either
    is missing or not comparable (another kind, too short)."""
    if not (is_valid(a) and is_valid(b)) or a[: _HEADER.size] != b[: _HEADER.size]:
        return None
    step_seconds = _HEADER.unpack_from(a)[2] / 10000.0
    first, second = _words(a), _words(b)
    reach = int(round(SEARCH_SECONDS / step_seconds))
    least = int(np.ceil(MIN_OVERLAP_SECONDS / step_seconds))
    # second, padded with `reach` zeros before and enough after, seen through 2 reach + 1
    # windows of len(first): window k holds second shifted by d = k - reach against first
    # (first[i] against second[i + d]); where a window holds padding, first[i] ^ 0 counts
    # first[i]'s own bits, which are taken off again
    n1, n2 = len(first), len(second)
    tail = max(0, n1 + reach - n2)
    padded = np.concatenate([np.zeros(reach, np.uint16), second, np.zeros(tail, np.uint16)])
    shifted = np.lib.stride_tricks.as_strided(
        padded, shape=(2 * reach + 1, n1), strides=(padded.strides[0], padded.strides[0]), writeable=False
    )
    errors = _bit_count(shifted ^ first[None, :]).sum(axis=1, dtype=np.int64)
    own = np.concatenate([[0], np.cumsum(_bit_count(first), dtype=np.int64)])
    shift = np.arange(2 * reach + 1) - reach
    low = np.minimum(np.maximum(-shift, 0), n1)  # first[i] meets second[i + shift] for low <= i < high
    high = np.minimum(np.maximum(n2 - shift, 0), n1)
    errors -= own[low] + (own[n1] - own[np.maximum(high, low)])
    overlap = np.maximum(high - low, 0)
    usable = overlap >= least
    if not np.any(usable):
        return None
    return float(np.min(errors[usable] / (overlap[usable] * BITS)))


def agree(a: bytes | None, b: bytes | None) -> bool:
    """Whether two fingerprints say one recording (bit error rate at most MATCH_BER)."""
    rate = bit_error_rate(a, b)
    return rate is not None and rate <= MATCH_BER


def to_text(data: bytes) -> str:
    """A fingerprint as the base64 text of `qbsd tag --vector`'s "fingerprint" field."""
    return base64.b64encode(data).decode("ascii")


def from_text(text: object) -> bytes | None:
    """The fingerprint a JSON record's "fingerprint" field holds, or None for anything but
    the base64 text of a valid one (a record without it, or with another, is still stored)."""
    if not isinstance(text, str) or len(text) > 2 * MAX_BYTES:
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if is_valid(data) else None
