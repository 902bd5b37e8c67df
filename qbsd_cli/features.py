"""MFCC features and the paper's 195x10 patches, in numpy only.

Training (through `feature_cache`) and inference (through `model.TagModel`) both
call `MfccExtractor.frames` and `frames_to_patches`, so a model never sees
features it was not trained on. The mel filterbank comes from `librosa.filters.mel` once,
at training time, and is stored in the ONNX model's metadata; at run time it is
read back from there, so librosa's ~4 s cold start (numba JIT, lazy imports) is
never paid by `qbsd`. The numpy pipeline follows `librosa.feature.mfcc` exactly
(centred STFT with zero padding, periodic Hann window, power spectrum, slaney
mel, 10*log10 with amin 1e-10, orthonormal DCT-II) except for one deliberate
difference: no `top_db` clipping, because that clip is relative to the loudest
frame of the whole file and would make a frame's features depend on the rest
of the song. `tests/test_features.py` checks the match against librosa.

Units and shapes
- samples: mono float32, shape (n_samples,), at `FeatureParams.sample_rate` Hz.
- mfcc frames: shape (n_frames, 39): 13 MFCC, 13 delta, 13 delta-delta;
  n_frames = 1 + n_samples // hop_length, frame t centred at t * hop_length.
- patches: shape (n_patches, 195, 10), float32. Patch p covers frames
  [50 p, 50 p + 50); its column j is the long frame made of frames
  50 p + 5 j ... 50 p + 5 j + 4, concatenated frame after frame (39 values
  each). Patches do not overlap; the trailing < 50 frames are dropped. A file
  with fewer than 50 frames (under 0.58 s at 22,050 Hz) has no patch and is
  rejected by the model (model.TagModel) with `TooShortError`.
- song statistics: shape (182,), float32, summaries of one 30 s segment's
  frames (`song_statistics`), the input of a blended model's statistics part.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import asdict, dataclass
from typing import overload

import numpy as np


@dataclass(frozen=True)
class FeatureParams:
    """Everything that defines the features; stored in the model metadata."""

    sample_rate: int = 22050
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 40
    n_mfcc: int = 13
    fmin: float = 0.0
    fmax: float = 11025.0
    delta_width: int = 9
    frames_per_long_frame: int = 5
    long_frames_per_patch: int = 10

    @property
    def frame_dim(self) -> int:
        """MFCC + delta + delta-delta values per frame (39)."""
        return 3 * self.n_mfcc

    @property
    def frames_per_patch(self) -> int:
        """Short frames in one patch (50)."""
        return self.frames_per_long_frame * self.long_frames_per_patch

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(195, 10): long-frame dimension by long frames."""
        return (self.frame_dim * self.frames_per_long_frame, self.long_frames_per_patch)

    @property
    def patch_seconds(self) -> float:
        """Duration one patch covers, in seconds (about 0.58)."""
        return self.frames_per_patch * self.hop_length / self.sample_rate

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureParams:
        return cls(**json.loads(text))


def decode_array(text: str) -> np.ndarray:
    """A numpy array from base64 .npy text (ONNX string metadata, written by
    `training.export.encode_array`)."""
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..n_mfcc-1, shape (n_mfcc, n_mels), as scipy's norm='ortho'."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    matrix = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def _savgol_kernel(width: int, order: int) -> np.ndarray:
    """Savitzky-Golay derivative kernel of librosa.feature.delta (polyorder = order).

    Coefficients in time order: dotted with frames t-half..t+half they give the
    first (order 1) or second (order 2) derivative at frame t.
    """
    half = width // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    vandermonde = np.vander(offsets, order + 1, increasing=True)
    pseudo_inverse = np.linalg.pinv(vandermonde)
    factorial = 1.0 if order == 1 else 2.0
    return (pseudo_inverse[order] * factorial).astype(np.float32)


#: Frames per STFT block in MfccExtractor.mfcc (256 frames: ~260 KB of spectrum).
_FRAMES_PER_BLOCK = 256


class MfccExtractor:
    """Computes (n_frames, 39) MFCC+delta+delta-delta with a fixed mel filterbank."""

    def __init__(self, params: FeatureParams, mel_basis: np.ndarray):
        expected = (params.n_mels, 1 + params.n_fft // 2)
        if mel_basis.shape != expected:
            raise ValueError(f"mel basis has shape {mel_basis.shape}, expected {expected}")
        self.params = params
        self.mel_basis = np.ascontiguousarray(mel_basis, dtype=np.float32)
        self._mel_basis_t = np.ascontiguousarray(self.mel_basis.T)
        self.dct = _dct_matrix(params.n_mfcc, params.n_mels)
        n = np.arange(params.n_fft)
        self.window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / params.n_fft)).astype(np.float32)
        self.delta_kernel = _savgol_kernel(params.delta_width, 1)
        self.delta2_kernel = _savgol_kernel(params.delta_width, 2)

    @overload
    def mfcc(self, samples: np.ndarray, band_weights: None = None) -> np.ndarray: ...

    @overload
    def mfcc(self, samples: np.ndarray, band_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def mfcc(
        self, samples: np.ndarray, band_weights: np.ndarray | None = None
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """13 MFCC per frame, shape (n_frames, 13), n_frames = 1 + len(samples) // hop.

        With `band_weights` (1 + n_fft // 2, n_bands), a filterbank transposed for the
        product, also the log-mel of the same power
        spectrum in those bands, log10(10000 m + 1) as the musicnn teachers compress theirs:
        (mfcc, bands (n_frames, n_bands)); the spectrum is computed once for both."""
        p = self.params
        samples = np.asarray(samples, dtype=np.float32)
        padded = np.pad(samples, p.n_fft // 2, mode="constant")
        n_frames = 1 + (len(padded) - p.n_fft) // p.hop_length
        frames = np.lib.stride_tricks.as_strided(
            padded,
            shape=(n_frames, p.n_fft),
            strides=(padded.strides[0] * p.hop_length, padded.strides[0]),
            writeable=False,
        )
        # In blocks of frames whose spectra stay in the CPU cache: one pass over the whole
        # file allocated and faulted in ~5 MB temporaries per 30 s, and took twice as long
        # (benchmarks/RESULTS.md). Same arithmetic; the mel products differ only in float32
        # rounding (the matrix product is blocked differently).
        mel = np.empty((n_frames, p.n_mels), dtype=np.float32)
        bands = None if band_weights is None else np.empty((n_frames, band_weights.shape[1]), dtype=np.float32)
        for start in range(0, n_frames, _FRAMES_PER_BLOCK):
            spectrum = np.fft.rfft(frames[start : start + _FRAMES_PER_BLOCK] * self.window, axis=1)
            power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
            np.matmul(power, self._mel_basis_t, out=mel[start : start + _FRAMES_PER_BLOCK])
            if bands is not None:
                assert band_weights is not None  # bands exist only for band_weights
                np.matmul(power, band_weights, out=bands[start : start + _FRAMES_PER_BLOCK])
        log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))
        coefficients = (log_mel @ self.dct.T).astype(np.float32)
        if bands is None:
            return coefficients
        return coefficients, np.log10(np.float32(10000.0) * bands + np.float32(1.0))

    def _derivative(self, values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        # librosa.feature.delta uses savgol_filter(mode="interp"): the edge frames
        # take the derivative of the polynomial fitted to the first (last) full
        # window, which for these orders is the value at that window's centre.
        half = len(kernel) // 2
        n_frames = values.shape[0]
        if n_frames < len(kernel):
            return np.zeros_like(values)
        windows = np.lib.stride_tricks.sliding_window_view(values, len(kernel), axis=0)
        inner = windows @ kernel  # (n_frames - 2 half, dims)
        return np.concatenate([np.repeat(inner[:1], half, axis=0), inner, np.repeat(inner[-1:], half, axis=0)]).astype(
            np.float32
        )

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """MFCC, delta and delta-delta, shape (n_frames, 39), float32."""
        return self._with_deltas(self.mfcc(samples))

    def frames_and_bands(self, samples: np.ndarray, band_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(`frames` (n_frames, 39), the log-mel in the bands of `band_weights` (1 + n_fft // 2,
        n_bands) float32, (n_frames, n_bands)) from one STFT."""
        coefficients, bands = self.mfcc(samples, band_weights)
        return self._with_deltas(coefficients), bands

    def _with_deltas(self, coefficients: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                coefficients,
                self._derivative(coefficients, self.delta_kernel),
                self._derivative(coefficients, self.delta2_kernel),
            ],
            axis=1,
        )


def frames_to_patches(frames: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Cut (n_frames, 39) frames into non-overlapping (n_patches, 195, 10) patches.

    See the module docstring for the exact layout; trailing frames that do not
    fill a patch are dropped.
    """
    per_patch = params.frames_per_patch
    n_patches = frames.shape[0] // per_patch
    used = frames[: n_patches * per_patch]
    # (patch, long frame, short frame, coefficient) -> (patch, short frame * coefficient, long frame)
    grouped = used.reshape(n_patches, params.long_frames_per_patch, params.frames_per_long_frame * params.frame_dim)
    return np.ascontiguousarray(grouped.transpose(0, 2, 1), dtype=np.float32)


SONG_STATISTICS_DIM = 78 + 78 + 26  # see song_statistics


def song_statistics(frames: np.ndarray) -> np.ndarray:
    """The song-statistics model's input, shape (182,) float32, from (n_frames, 39) frames:
    the mean and standard deviation of each coefficient (78), the correlations between
    the 13 cepstral coefficients (upper triangle, 78), and their skewness (13) and excess
    kurtosis (13). A coefficient that is constant up to rounding (digital silence) has
    correlation, skewness and kurtosis 0."""
    # float32 products with float64 sums: 0.4 ms for a 30 s segment where the obvious
    # float64 version takes 4.5 ms, on the hot path of every analysed segment
    count = len(frames)
    cepstral = frames.shape[1] // 3  # the static coefficients; then deltas, delta-deltas
    mean = frames.mean(axis=0, dtype=np.float64)
    centred = frames - mean.astype(np.float32)
    std = np.sqrt(np.einsum("ij,ij->j", centred, centred, dtype=np.float64) / count)
    # constant up to float32 rounding (digital silence): standardising would blow the
    # rounding noise up into large, meaningless skewness and kurtosis
    varies = std[:cepstral] > 1e-3 * (1.0 + np.abs(mean[:cepstral]))
    inverse_std = np.where(varies, 1.0 / np.where(varies, std[:cepstral], 1.0), 0.0)
    standardised = centred[:, :cepstral] * inverse_std.astype(np.float32)
    correlation = (standardised.T @ standardised).astype(np.float64) / count
    upper = np.triu_indices(cepstral, 1)
    squared = standardised * standardised
    skewness = np.einsum("ij,ij->j", squared, standardised, dtype=np.float64) / count
    kurtosis = np.where(varies, np.einsum("ij,ij->j", squared, squared, dtype=np.float64) / count - 3.0, 0.0)
    return np.concatenate([mean, std, correlation[upper], skewness, kurtosis]).astype(np.float32)
