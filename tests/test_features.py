"""The numpy MFCC pipeline matches librosa.feature.mfcc on real clips, and patches are cut as documented."""

import numpy as np
import pytest

from qbsd_cli.audio import decode
from qbsd_cli.features import SONG_STATISTICS_DIM, FeatureParams, MfccExtractor, frames_to_patches, song_statistics
from qbsd_cli.training.export import librosa_mel_basis

librosa = pytest.importorskip("librosa")

# Absolute tolerance on MFCC values (which range over hundreds): float32 STFT
# against librosa's float64 path differs by at most a few thousandths.
MFCC_TOLERANCE = 0.02
DELTA_TOLERANCE = 0.005


def librosa_reference(samples, params):
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=params.sample_rate,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
    )
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=params.n_mfcc)
    return np.concatenate(
        [
            mfcc,
            librosa.feature.delta(mfcc, width=params.delta_width),
            librosa.feature.delta(mfcc, width=params.delta_width, order=2),
        ]
    ).T


def test_matches_librosa_on_real_clips(clip_paths):
    params = FeatureParams()
    extractor = MfccExtractor(params, librosa_mel_basis(params))
    for path in clip_paths[:3]:
        samples = decode(path).samples
        ours = extractor.frames(samples)
        reference = librosa_reference(samples, params)
        assert ours.shape == reference.shape == (1 + len(samples) // params.hop_length, 39)
        assert np.abs(ours[:, :13] - reference[:, :13]).max() < MFCC_TOLERANCE
        assert np.abs(ours[:, 13:] - reference[:, 13:]).max() < DELTA_TOLERANCE


def test_patch_layout():
    params = FeatureParams()
    frames = np.arange(120 * 39, dtype=np.float32).reshape(120, 39)
    patches = frames_to_patches(frames, params)
    assert patches.shape == (2, 195, 10)  # 120 frames: two patches of 50, 20 dropped
    # column j of patch p = frames 50p+5j .. 50p+5j+4, one after the other
    np.testing.assert_array_equal(patches[1][:, 3], frames[50 + 15 : 50 + 20].reshape(-1))


def test_under_one_patch_of_audio_gives_no_patch():
    params = FeatureParams()
    extractor = MfccExtractor(params, librosa_mel_basis(params))
    short = extractor.frames(np.zeros(int(0.3 * params.sample_rate), dtype=np.float32))
    assert frames_to_patches(short, params).shape == (0, 195, 10)
    enough = extractor.frames(np.zeros(int(0.6 * params.sample_rate), dtype=np.float32))
    assert frames_to_patches(enough, params).shape == (1, 195, 10)


def test_song_statistics_are_the_textbook_ones_on_a_real_clip(clip_paths):
    scipy_stats = pytest.importorskip("scipy.stats")
    params = FeatureParams()
    frames = MfccExtractor(params, librosa_mel_basis(params)).frames(decode(clip_paths[0]).samples)
    statistics = song_statistics(frames)
    assert statistics.shape == (SONG_STATISTICS_DIM,) == (182,)
    cepstral = frames[:, :13].astype(np.float64)
    expected = np.concatenate(
        [
            frames.mean(0),
            frames.std(0),
            np.corrcoef(cepstral.T)[np.triu_indices(13, 1)],
            scipy_stats.skew(cepstral),
            scipy_stats.kurtosis(cepstral),
        ]
    )
    np.testing.assert_allclose(statistics, expected, rtol=1e-4, atol=1e-4)


def test_song_statistics_of_digital_silence_are_finite():
    params = FeatureParams()
    frames = MfccExtractor(params, librosa_mel_basis(params)).frames(np.zeros(params.sample_rate, dtype=np.float32))
    statistics = song_statistics(frames)
    assert np.isfinite(statistics).all()
    assert not statistics[78:].any()  # no correlation, skewness or kurtosis without variation
