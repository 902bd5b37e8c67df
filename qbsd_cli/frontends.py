"""Front ends: decoded samples of one segment -> the patches a model's graph takes.

A model's metadata names its front end (`qbsd.front_end`), so training and inference cut
the same patches:

- `mfcc` (the fast model, after Qin et al.): 22.05 kHz, 39-dim MFCC frames, patches of
  shape (195, 10) (`features.py`); also gives the segment's MFCC frames, from which a
  blended model computes its song statistics.
- `mfcc-bands` (the fast model since issue 10's band student, beyond the paper): the same
  22.05 kHz STFT as `mfcc`, its power in 96 Slaney bands over 0-11,025 Hz, log10(10000 m +
  1), cut into windows of shape (258, 96), 2.996 s each without overlap; the MFCC frames
  still feed the statistics half.
- `musicnn-logmel` (the accurate model, whose graph holds the musicnn teachers): 16 kHz,
  96-band log-mel, patches of shape (187, 96), 3 s each without overlap (`logmel.py`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from . import logmel
from .features import FeatureParams, MfccExtractor, frames_to_patches

MFCC = "mfcc"
MUSICNN_LOGMEL = "musicnn-logmel"
MFCC_BANDS = "mfcc-bands"
#: Frames per band window: the teachers' 2.992 s patch at the MFCC's 11.6 ms hop.
BAND_WINDOW_FRAMES = 258
#: The shortest audio the log-mel front end analyses: below a second, the one patch would
#: be mostly the padding that stands in for the missing 3 s.
MIN_LOGMEL_SECONDS = 1.0


class FrontEnd(Protocol):
    """What `model.TagModel` uses of a front end, for the type checker (nothing is checked at
    run time): MfccFrontEnd, MfccBandsFrontEnd and LogMelFrontEnd have it."""

    @property
    def name(self) -> str:
        """MFCC, MFCC_BANDS or MUSICNN_LOGMEL."""
        ...

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) of the samples it takes."""
        ...

    @property
    def hop_length(self) -> int:
        """Samples between the starts of two frames."""
        ...

    @property
    def min_seconds(self) -> float:
        """The shortest audio that gives a patch."""
        ...

    @property
    def min_later_segment_seconds(self) -> float:
        """A file's later segments shorter than this are skipped."""
        ...

    @property
    def extractor(self) -> MfccExtractor | None:
        """The MFCC extractor of an MFCC front end, None for the log-mel one."""
        ...

    def patches(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(patches, MFCC frames or None) of mono samples at `sample_rate`."""
        ...

    def patches_and_log_mel(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(patches, MFCC frames or None, the segment's log-mel (n_frames, 96))."""
        ...

    def blank_patch(self) -> np.ndarray:
        """One patch of silence, shape (1, *patch shape)."""
        ...


class MfccFrontEnd:
    """The paper's front end; `params` and `mel_basis` come from the model's metadata."""

    name = MFCC

    def __init__(self, params: FeatureParams, mel_basis: np.ndarray):
        self.params = params
        self.sample_rate = params.sample_rate
        self.hop_length = params.hop_length
        self.min_seconds = params.patch_seconds
        self.min_later_segment_seconds = 0.0  # a tail shorter than a patch has no patch anyway
        self.extractor = MfccExtractor(params, mel_basis)
        #: the band statistics' 96-band filterbank, transposed for the product (made when first needed)
        self._band_weights: np.ndarray | None = None

    def patches(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(patches (n, 195, 10), MFCC frames (n_frames, 39)) of mono samples at 22.05 kHz;
        n is 0 for audio shorter than one patch."""
        frames = self.extractor.frames(samples)
        return frames_to_patches(frames, self.params), frames

    def blank_patch(self) -> np.ndarray:
        return np.zeros((1, *self.params.patch_shape), dtype=np.float32)

    def _weights(self) -> np.ndarray:
        if self._band_weights is None:  # once per front end, not per segment
            filterbank = logmel.mel_filterbank(self.sample_rate, self.params.n_fft, logmel.N_MELS)
            self._band_weights = np.ascontiguousarray(filterbank.T)
        return self._band_weights

    def bands(self, samples: np.ndarray) -> np.ndarray:
        """The segment's log-mel in 96 Slaney bands over 0-11,025 Hz (log10(10000 m + 1)), from
        the MFCC's STFT, shape (n_frames, 96) float32, n_frames = 1 + len(samples) // hop."""
        return self.extractor.frames_and_bands(samples, self._weights())[1]

    def patches_and_bands(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`patches` plus the segment's band statistics, shape (320,) float32
        (`logmel.band_statistics` of its log-mel in 96 Slaney bands over 0-11,025 Hz, from
        the same STFT as the MFCC): what the statistics half of a model whose metadata
        `qbsd.statistics_features` names LOGMEL_BANDS takes after the 182 MFCC statistics,
        at run time and in training alike (training.feature_cache). Needs 2 frames."""
        frames, bands = self.extractor.frames_and_bands(samples, self._weights())
        return frames_to_patches(frames, self.params), frames, logmel.band_statistics(bands)

    def patches_and_log_mel(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patches, MFCC frames, the segment's log-mel in 96 Slaney bands (n_frames, 96)),
        from one STFT: what `patches` gives plus what the band statistics and the audio
        fingerprint (fingerprint.py) are computed from."""
        frames, bands = self.extractor.frames_and_bands(samples, self._weights())
        return frames_to_patches(frames, self.params), frames, bands


def band_windows(bands: np.ndarray) -> np.ndarray:
    """Non-overlapping windows (n, BAND_WINDOW_FRAMES, 96) float32 of one segment's band
    log-mel (n_frames, 96); trailing frames that do not fill a window are dropped, and a
    segment shorter than one window is one window padded with silence (the log-mel 0)."""
    bands = np.asarray(bands, dtype=np.float32)
    if len(bands) < BAND_WINDOW_FRAMES:
        padded = np.zeros((1, BAND_WINDOW_FRAMES, bands.shape[1]), dtype=np.float32)
        padded[0, : len(bands)] = bands
        return padded
    count = len(bands) // BAND_WINDOW_FRAMES
    return np.ascontiguousarray(bands[: count * BAND_WINDOW_FRAMES].reshape(count, BAND_WINDOW_FRAMES, -1))


class MfccBandsFrontEnd(MfccFrontEnd):
    """`mfcc-bands`: the MFCC front end whose patches are band windows (`band_windows`);
    the MFCC frames come from the same STFT for the statistics half."""

    name = MFCC_BANDS

    def __init__(self, params: FeatureParams, mel_basis: np.ndarray):
        super().__init__(params, mel_basis)
        self.min_seconds = MIN_LOGMEL_SECONDS
        #: later segments shorter than a window are skipped, as the teacher outputs the band
        #: student learnt from skip them (training.teacher.MIN_SEGMENT_SECONDS)
        self.min_later_segment_seconds = LogMelFrontEnd.min_later_segment_seconds

    def _windows(self, samples: np.ndarray, bands: np.ndarray) -> np.ndarray:
        if len(samples) < self.min_seconds * self.sample_rate:
            return np.zeros((0, BAND_WINDOW_FRAMES, logmel.N_MELS), dtype=np.float32)
        return band_windows(bands)

    def patches(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(band windows (n, 258, 96), MFCC frames (n_frames, 39)) of mono samples at
        22.05 kHz; n is 0 for audio shorter than a second."""
        frames, bands = self.extractor.frames_and_bands(samples, self._weights())
        return self._windows(samples, bands), frames

    def blank_patch(self) -> np.ndarray:
        return np.zeros((1, BAND_WINDOW_FRAMES, logmel.N_MELS), dtype=np.float32)

    def patches_and_bands(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`patches` plus the segment's band statistics (320,), as MfccFrontEnd's."""
        frames, bands = self.extractor.frames_and_bands(samples, self._weights())
        return self._windows(samples, bands), frames, logmel.band_statistics(bands)

    def patches_and_log_mel(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`patches` plus the segment's log-mel (n_frames, 96), as MfccFrontEnd's."""
        frames, bands = self.extractor.frames_and_bands(samples, self._weights())
        return self._windows(samples, bands), frames, bands


#: What a blended model's statistics half takes per segment (metadata
#: `qbsd.statistics_features`, "+"-joined, in input order): the 182 MFCC statistics
#: (features.song_statistics), then optionally the 320 band statistics
#: (MfccFrontEnd.patches_and_bands).
MFCC_STATISTICS = "mfcc-statistics"
LOGMEL_BANDS = "logmel-bands"
STATISTICS_DIMS = {MFCC_STATISTICS: 182, LOGMEL_BANDS: logmel.BAND_STATISTICS_DIM}


class LogMelFrontEnd:
    """musicnn's front end (see logmel.py); nothing in it is learnt. The model's metadata
    describes it (`qbsd.front_end_params`), and ModelInfo refuses a model whose description
    differs from what this code computes."""

    #: The settings a model's `qbsd.front_end_params` must have for these patches to be its.
    SETTINGS = {
        "sample_rate": logmel.SAMPLE_RATE,
        "n_fft": logmel.N_FFT,
        "hop_length": logmel.HOP_LENGTH,
        "n_mels": logmel.N_MELS,
        "patch_frames": logmel.PATCH_FRAMES,
    }

    name = MUSICNN_LOGMEL
    sample_rate = logmel.SAMPLE_RATE
    hop_length = logmel.HOP_LENGTH
    min_seconds = MIN_LOGMEL_SECONDS
    #: A file's later segments shorter than a patch are skipped, as the teacher outputs the
    #: heads were trained on skip them (training.teacher.MIN_SEGMENT_SECONDS); only a
    #: file's first segment is padded.
    min_later_segment_seconds = 3.0
    #: no MFCC: this front end computes the log-mel alone
    extractor: MfccExtractor | None = None

    def patches(self, samples: np.ndarray) -> tuple[np.ndarray, None]:
        """(patches (n, 187, 96), None) of mono samples at 16 kHz; a segment of 1 to 3 s is
        one patch padded with silence, a shorter one has none."""
        if len(samples) < self.min_seconds * self.sample_rate:
            return np.zeros((0, logmel.PATCH_FRAMES, logmel.N_MELS), dtype=np.float32), None
        return logmel.patches(logmel.log_mel(samples)), None

    def patches_and_log_mel(self, samples: np.ndarray) -> tuple[np.ndarray, None, np.ndarray]:
        """(`patches`, None, the segment's log-mel (n_frames, 96)): the patches are cut from it."""
        features = logmel.log_mel(samples)
        if len(samples) < self.min_seconds * self.sample_rate:
            return np.zeros((0, logmel.PATCH_FRAMES, logmel.N_MELS), dtype=np.float32), None, features
        return logmel.patches(features), None, features

    def blank_patch(self) -> np.ndarray:
        return np.zeros((1, logmel.PATCH_FRAMES, logmel.N_MELS), dtype=np.float32)
