"""qbsd_cli.logmel, the teacher's numpy front end, against librosa on generated audio.

Reference: librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96,
pad_mode="reflect") (the padding musicnn's librosa 0.7 used; librosa >= 0.10 defaults to
zeros, which changes only the first and last frame). Tolerances: the filterbank within 1e-6
absolute (measured 1.9e-9); the mel power within 1e-4 relative where it is above 1e-6 of
the maximum (measured 7.5e-6: float32 FFTs in different orders); the log-mel within 1e-3
absolute (where the two mel powers straddle a float16 rounding boundary they differ by one
float16 step, at most 2^-10 relative, i.e. log10(1 + 2^-10) = 4.2e-4 after the log; measured 4.2e-4).
"""

from __future__ import annotations

import numpy as np
import pytest

from qbsd_cli import logmel

librosa = pytest.importorskip("librosa")


def _audio(seconds: float = 7.3, seed: int = 3) -> np.ndarray:
    """Noise, two partials and a click train at 16 kHz, loud enough to pass musicnn's
    float16 overflow (mel power > 6.55) in places."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * logmel.SAMPLE_RATE)) / logmel.SAMPLE_RATE
    signal = 0.2 * rng.standard_normal(len(t)) + 0.8 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3150 * t)
    signal[:: logmel.SAMPLE_RATE // 4] += 3.0
    return signal.astype(np.float32)


def _librosa_mel(samples: np.ndarray) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=samples, sr=16000, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect"
    ).T


def test_filterbank_is_librosas():
    expected = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)
    got = logmel.mel_filterbank()
    assert got.shape == (96, 257) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_mel_power_matches_librosa():
    samples = _audio()
    expected = _librosa_mel(samples)
    got = logmel.mel_power(samples)
    assert got.shape == expected.shape == (1 + len(samples) // 256, 96)
    significant = expected > 1e-6 * expected.max()
    assert np.max(np.abs(got - expected)[significant] / expected[significant]) < 1e-4


def test_log_mel_is_musicnns_compression_in_float32():
    samples = _audio()
    power = _librosa_mel(samples).astype(np.float16).astype(np.float32)
    expected = np.log10(10000 * power + 1)
    got = logmel.log_mel(samples)
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    assert power.max() > 6.55  # where musicnn's float16 log gives inf
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)


def test_log_mel_stays_finite_beyond_float16():
    """Mel power above float16's 65504 is clipped there rather than becoming inf."""
    t = np.arange(16000) / 16000
    got = logmel.log_mel((200.0 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert np.all(np.isfinite(got))
    assert got.max() == pytest.approx(np.log10(10000 * 65504.0 + 1), rel=1e-6)


def test_patches_follow_musicnns_default():
    features = np.arange(1000 * 96, dtype=np.float32).reshape(1000, 96)
    patches = logmel.patches(features)
    # musicnn: range(0, n_frames - 187 + 1, 187), no overlap, remainder dropped
    assert patches.shape == (5, 187, 96)
    np.testing.assert_array_equal(patches[1], features[187:374])
    short = logmel.patches(features[:50])
    assert short.shape == (1, 187, 96)
    np.testing.assert_array_equal(short[0, :50], features[:50])
    assert not short[0, 50:].any()


def test_thirty_seconds_make_ten_patches():
    assert logmel.patches(logmel.log_mel(np.zeros(30 * 16000, dtype=np.float32))).shape == (10, 187, 96)


def test_band_statistics_summarise_bands_and_find_the_beat():
    """The fast model's band statistics: per band mean, spread and change, then the onset
    autocorrelation, which peaks at the period of a click track (0.5 s: lag 31 frames of
    16 ms, in bin 6 of lags 31-35)."""
    rate = logmel.SAMPLE_RATE
    rng = np.random.default_rng(0)
    samples = 0.01 * rng.standard_normal(rate * 10).astype(np.float32)
    click = np.hanning(160).astype(np.float32)
    for start in range(0, len(samples) - 160, rate // 2):
        samples[start : start + 160] += click
    features = logmel.log_mel(samples)
    statistics = logmel.band_statistics(features)
    assert statistics.shape == (logmel.BAND_STATISTICS_DIM,) == (320,)
    bands = logmel.N_MELS
    np.testing.assert_allclose(statistics[:bands], features.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(statistics[bands : 2 * bands], features.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(statistics[2 * bands : 3 * bands], np.abs(np.diff(features, axis=0)).mean(0), rtol=1e-4)
    onset = statistics[3 * bands :]
    assert int(np.argmax(onset)) == 6
    silent = logmel.band_statistics(logmel.log_mel(np.zeros(rate, dtype=np.float32)))
    assert np.all(np.isfinite(silent)) and np.all(silent[3 * bands :] == 0)
