"""The musicnn teacher's front end in numpy: 96-band log-mel patches at 16 kHz.

This reproduces `musicnn.extractor.batch_data` (musicnn 0.1.0) without librosa:

1. mono samples at 16 kHz (librosa.load's job there; `qbsd_cli.audio.decode(path, 16000)`
   does the same: libsndfile decoding, channel mean, soxr HQ resampling);
2. `librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96)`:
   periodic Hann window, centred frames, power 2, Slaney mel filters with Slaney area
   normalisation. The centring pads with *reflection*, as librosa 0.7-0.9 did (musicnn
   requires librosa>=0.7 and its models were trained in 2019 on librosa's reflect padding);
   librosa >= 0.10 pads with zeros instead, which changes the first and last frame only;
3. the mel power rounded to float16, as musicnn stores it;
4. log10(10000 * mel + 1) taken in float32. musicnn takes it in float16, which overflows
   to inf for mel power above 6.55 (common in loud music); the float16 rounding is kept,
   and power beyond float16's range (65504) is clipped there rather than becoming inf;
5. patches of 187 frames (3 s: librosa.time_to_frames(3, sr=16000, n_fft=512,
   hop_length=256) + 1), one after another without overlap: musicnn's default
   input_overlap=False makes the patch hop equal to the patch length.

The mel filterbank is computed here in numpy with librosa's formulas (tests/test_logmel.py
checks it against librosa.filters.mel), so nothing of librosa runs per file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
#: Frames per teacher input patch: 3 s at 16 kHz, hop 256 (musicnn's n_frames).
PATCH_FRAMES = 187
#: The largest finite float16: mel power beyond it is clipped before the float16 rounding.
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa.hz_to_mel with htk=False): linear below 1 kHz, log above."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    step = 200.0 / 3
    log_start_hz, log_start_mel, log_step = 1000.0, 1000.0 / step, np.log(6.4) / 27.0
    mels = frequencies / step
    above = frequencies >= log_start_hz
    mels[above] = log_start_mel + np.log(frequencies[above] / log_start_hz) / log_step
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `_hz_to_mel` (librosa.mel_to_hz with htk=False)."""
    mels = np.asarray(mels, dtype=np.float64)
    step = 200.0 / 3
    log_start_hz, log_start_mel, log_step = 1000.0, 1000.0 / step, np.log(6.4) / 27.0
    frequencies = mels * step
    above = mels >= log_start_mel
    frequencies[above] = log_start_hz * np.exp(log_step * (mels[above] - log_start_mel))
    return frequencies


@lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) (fmin 0, fmax sr/2, Slaney scale and norm).

    Shape (n_mels, n_fft // 2 + 1), float32: triangular filters over the FFT bins,
    each scaled by 2 / (its bandwidth in Hz) so that all have the same area.
    """
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_hz = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sample_rate / 2.0]))[0], n_mels + 2)
    )
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n, fftbins=True)), float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def mel_power(samples: np.ndarray) -> np.ndarray:
    """Mel power spectrogram of mono 16 kHz samples, shape (n_frames, 96), float32.

    n_frames = 1 + len(samples) // 256: frame t is centred on sample 256 t, the signal
    being extended at both ends by reflection (zeros for a signal too short to reflect).
    Equals librosa.feature.melspectrogram(..., pad_mode="reflect").T.
    """
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    half = N_FFT // 2
    mode: Literal["reflect", "constant"] = "reflect" if len(samples) > half else "constant"
    padded = np.pad(samples, half, mode=mode)
    n_frames = 1 + len(samples) // HOP_LENGTH
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(HOP_LENGTH * padded.strides[0], padded.strides[0]), writeable=False
    )
    spectrum = np.fft.rfft(frames * _hann(N_FFT), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)
    return power @ mel_filterbank().T


def log_mel(samples: np.ndarray) -> np.ndarray:
    """The teacher's input features, shape (n_frames, 96), float32: log10(10000 m + 1) of
    the mel power m rounded to float16 (musicnn's storage precision), the log in float32."""
    power = np.minimum(mel_power(samples), FLOAT16_MAX).astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000.0) * power + np.float32(1.0))


def patches(features: np.ndarray, hop: int = PATCH_FRAMES) -> np.ndarray:
    """Cut (n_frames, 96) features into teacher inputs, shape (n_patches, 187, 96), float32.

    Patches start every `hop` frames (187: musicnn's default, no overlap) and a trailing
    remainder shorter than a patch is dropped, as musicnn does. Features shorter than one
    patch (under 3 s) are padded with zeros (the log-mel of silence) to one patch, where
    musicnn would fail.
    """
    features = np.asarray(features, dtype=np.float32)
    if len(features) < PATCH_FRAMES:
        padding = np.zeros((PATCH_FRAMES - len(features), features.shape[1]), dtype=np.float32)
        return np.concatenate([features, padding])[None]
    starts = range(0, len(features) - PATCH_FRAMES + 1, hop)
    return np.stack([features[start : start + PATCH_FRAMES] for start in starts])


#: Onset-envelope autocorrelation: lags 1 ... ONSET_LAGS frames (1.9 s at the fast model's
#: 11.6 ms a frame), averaged over ONSET_BINS bins of equal width.
ONSET_LAGS = 160
ONSET_BINS = 32
#: Values of `band_statistics`: per band its mean, standard deviation and mean absolute
#: change from one frame to the next (3 x 96), then the onset bins (32).
BAND_STATISTICS_DIM = 3 * N_MELS + ONSET_BINS


def band_statistics(features: np.ndarray) -> np.ndarray:
    """Summaries of one segment's log-mel (shape (n_frames, 96), n_frames >= 2; the fast
    model's comes from its own 22.05 kHz spectrum, frontends.MfccFrontEnd), shape
    (BAND_STATISTICS_DIM,) float32, the fast model's second set of song statistics (beyond
    the paper): the spectral envelope in 96 bands (mean, spread, frame-to-frame change) and
    the rhythm (the autocorrelation of the onset envelope, the summed positive change over
    bands, normalised by its value at lag 0, in bins of 5 lags)."""
    features = np.asarray(features, dtype=np.float32)
    change = np.diff(features, axis=0)
    onset = np.maximum(change, 0.0).sum(axis=1, dtype=np.float64)
    onset -= onset.mean()
    energy = float(onset @ onset)
    lags = np.zeros(ONSET_LAGS)
    if energy > 0:
        usable = min(ONSET_LAGS, len(onset) - 1)
        for lag in range(1, usable + 1):
            lags[lag - 1] = float(onset[:-lag] @ onset[lag:]) / energy
    return np.concatenate(
        [
            features.mean(axis=0, dtype=np.float64),
            features.std(axis=0, dtype=np.float64),
            np.abs(change).mean(axis=0, dtype=np.float64),
            lags.reshape(ONSET_BINS, -1).mean(axis=1),
        ]
    ).astype(np.float32)
