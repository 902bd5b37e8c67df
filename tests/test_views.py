"""Augmented views (training/views.py) and the band student taught on them: the audio is
changed as drawn, the teachers and the student's front end analyse the same changed audio,
views are cached and resumable, and a fold's student never sees a view of a test clip.
Generated audio, the real teachers of models/teacher."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from helpers import write_chord  # noqa: E402

from qbsd_cli.features import FeatureParams  # noqa: E402
from qbsd_cli.training import accurate, band_student, views  # noqa: E402
from qbsd_cli.training.export import librosa_mel_basis  # noqa: E402

RATE = 22050


def _tone(frequency: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1.0 / RATE)[np.argmax(spectrum)])


def _only(**changes) -> views.Augmentation:
    """An augmentation that changes nothing but `changes`."""
    unchanged = dict(
        gain_db=(0.0, 0.0),
        tilt_db_per_octave=(0.0, 0.0),
        speed=(1.0, 1.0),
        noise_share=0.0,
        codec_share=0.0,
    )
    return views.Augmentation(**{**unchanged, **changes})


def test_nothing_drawn_changes_nothing():
    tone = _tone(440.0)
    same = views.augment(tone, RATE, np.random.default_rng(0), _only())
    np.testing.assert_allclose(same, tone, atol=1e-5)


def test_speed_moves_pitch_and_length_together():
    tone = _tone(1000.0)
    faster = views.augment(tone, RATE, np.random.default_rng(0), _only(speed=(1.04, 1.04)))
    assert abs(_peak_hz(faster) - 1040.0) < 3.0
    assert abs(len(faster) - len(tone) / 1.04) < 5
    slower = views.augment(tone, RATE, np.random.default_rng(0), _only(speed=(0.96, 0.96)))
    assert abs(_peak_hz(slower) - 960.0) < 3.0
    assert len(slower) == len(tone)  # cut to the segment's length


def test_tilt_and_gain():
    low, high = _tone(250.0), _tone(4000.0)
    mix = (low + high) / 2

    def band_power(samples, frequency):
        spectrum = np.abs(np.fft.rfft(samples))
        return spectrum[np.argmin(np.abs(np.fft.rfftfreq(len(samples), 1.0 / RATE) - frequency))]

    bright = views.augment(mix, RATE, np.random.default_rng(0), _only(tilt_db_per_octave=(1.5, 1.5)))
    # 4 octaves between them: 6 dB more of the high tone relative to the low one
    ratio = (band_power(bright, 4000) / band_power(bright, 250)) / (band_power(mix, 4000) / band_power(mix, 250))
    assert 20 * np.log10(ratio) == pytest.approx(6.0, abs=0.1)
    quieter = views.augment(mix, RATE, np.random.default_rng(0), _only(gain_db=(-6.0, -6.0)))
    np.testing.assert_allclose(quieter, mix * 10 ** (-6 / 20), atol=1e-5)
    loud = views.augment(mix, RATE, np.random.default_rng(0), _only(gain_db=(20.0, 20.0)))
    assert np.abs(loud).max() <= 1.0  # clipped as a file would be


def test_noise_and_reencoding_keep_length_and_the_sound():
    tone = _tone(440.0, seconds=3.0)
    for container_draw in range(4):  # both MP3 and Ogg among the draws
        rng = np.random.default_rng(container_draw)
        changed = views.augment(tone, RATE, rng, _only(noise_share=1.0, noise_snr_db=(30.0, 30.0), codec_share=1.0))
        assert len(changed) == len(tone) and changed.dtype == np.float32
        assert abs(_peak_hz(changed) - 440.0) < 2.0
        residual = changed - tone
        assert 0 < np.mean(residual**2) < 0.1 * np.mean(tone**2)


def test_a_draw_is_fixed_by_view_file_and_segment():
    tone = _tone(440.0)
    key = "0123456789abcdef0123"
    first = views.augment(tone, RATE, views.segment_rng(1, key, 0))
    np.testing.assert_array_equal(first, views.augment(tone, RATE, views.segment_rng(1, key, 0)))
    assert not np.array_equal(first, views.augment(tone, RATE, views.segment_rng(2, key, 0)))
    assert not np.array_equal(first, views.augment(tone, RATE, views.segment_rng(1, key, 1)))


def test_views_are_cached_aligned_and_resumable(tmp_path):
    params = FeatureParams()
    mel_basis = librosa_mel_basis(params)
    paths = [
        str(write_chord(tmp_path / "short.wav", seconds=7.0)),
        str(write_chord(tmp_path / "long.wav", frequencies=(196.0, 247.0), seconds=40.0)),
    ]
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    paths.append(str(tmp_path / "broken.wav"))
    lines = []
    arguments = (str(tmp_path / "cache"), params, mel_basis, str(accurate.TEACHER_DIR))
    folder = views.compute_views(paths, 2, *arguments, log=lines.append)
    assert sum("files to compute" in line for line in lines) == 2  # views 1 and 2
    assert views.load_view(folder, paths[2], 1) is None  # undecodable: marked, not retried
    for path, segments in zip(paths[:2], (1, 2)):
        frames, outputs = views.load_view(folder, path, 1)
        assert frames.shape == (segments, band_student.SEGMENT_FRAMES, 96)
        starts, targets = band_student.patch_windows(frames, outputs)
        assert targets.shape == (len(starts), 500) and np.isfinite(targets).all()
        # every window lies on the view's real frames, as the teachers' patches do
        for segment, first in starts:
            window = frames[segment, first : first + band_student.WINDOW_FRAMES].astype(np.float32)
            assert np.isfinite(window).all()
    other_frames, _ = views.load_view(folder, paths[1], 2)
    assert not np.array_equal(views.load_view(folder, paths[1], 1)[0], other_frames)
    # a second run computes nothing; a lost file of a view is recomputed as it was
    again = []
    views.compute_views(paths, 2, *arguments, log=again.append)
    assert again == []
    kept_frames, kept_outputs = (np.array(frames), outputs)
    frames_file, outputs_file = views._targets(folder, paths[1], 1)
    import os

    os.remove(outputs_file)
    views.compute_views(paths, 2, *arguments, log=again.append)
    frames, outputs = views.load_view(folder, paths[1], 1)
    np.testing.assert_array_equal(np.array(frames), kept_frames)
    np.testing.assert_allclose(outputs["MSD_musicnn/penultimate"], kept_outputs["MSD_musicnn/penultimate"], atol=1e-6)
    # the key covers the augmentation: other ranges are other views
    wider = views.Augmentation(speed=(0.9, 1.1))
    assert views.cache_folder(*arguments, wider) != folder


def _data_with_views(seed: int, held_out_view_targets: float) -> band_student.BandData:
    """Two clips and three corpus files, each with one view; the views of clip 1 (a test
    clip below) have targets `held_out_view_targets`, the others the original's plus 5."""
    rng = np.random.default_rng(seed)
    frames = [rng.standard_normal((1, band_student.SEGMENT_FRAMES, 96)).astype(np.float16) for _ in range(5)]
    starts = [np.array([[0, t] for t in range(0, 2300, 258)]) for _ in frames]
    targets = [rng.standard_normal((len(s), 500)).astype(np.float32) for s in starts]
    data = band_student.BandData(frames, starts, targets, n_clips=2)
    for f in range(5):
        data.variants[f].append(len(data.band_frames))
        data.band_frames.append(frames[f])
        data.starts.append(starts[f])
        data.targets.append(np.full_like(targets[f], held_out_view_targets) if f == 1 else targets[f] + 5.0)
    return data


def test_a_fold_never_sees_a_view_of_its_test_clips():
    # clip 1 is the test clip: NaN targets on its view would make any loss NaN
    data = _data_with_views(3, held_out_view_targets=np.nan)
    labels = np.array([[1.0, 0.0]])
    settings = band_student.BandStudentSettings(width=8, epochs=4, batch_size=8, clip_views=1, corpus_views=1)
    lines = []
    band_student.teach(data, np.array([0]), labels, settings, lines.append)
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if "loss" in line]
    assert len(losses) == 4 and np.isfinite(losses).all()


def test_views_are_drawn_only_when_asked_for():
    data = _data_with_views(4, held_out_view_targets=0.0)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])

    def first_loss(settings):
        lines = []
        band_student.teach(data, np.arange(2), labels, settings, lines.append)
        return float(lines[0].split("loss ")[1].split()[0])

    plain = band_student.BandStudentSettings(width=8, epochs=1, batch_size=8)
    with_views = band_student.BandStudentSettings(width=8, epochs=1, batch_size=8, clip_views=1, corpus_views=1)
    # the views' targets sit 5 deviations away: drawn for about half the files, they show
    assert first_loss(with_views) > 3 * first_loss(plain)
    assert data.chosen_variants(plain) == [[] for _ in range(10)]
    assert data.chosen_variants(with_views)[:5] == [[5], [6], [7], [8], [9]]


@pytest.mark.usefixtures("one_thread")
def test_a_killed_training_on_views_resumes_where_it_stopped(tmp_path):
    data = _data_with_views(5, held_out_view_targets=0.0)
    settings = band_student.BandStudentSettings(width=8, epochs=3, batch_size=8, checkpoints=(2,))
    files, variants = np.arange(5), data.chosen_variants(band_student.BandStudentSettings(clip_views=1, corpus_views=1))
    arguments = (data.band_frames, data.starts, data.targets, files, settings)
    whole = band_student.fit_band_student(*arguments, log=print, variants=variants)

    def killed(epoch, student):
        raise KeyboardInterrupt

    state = str(tmp_path / "state.pt")
    with pytest.raises(KeyboardInterrupt):
        band_student.fit_band_student(*arguments, print, on_checkpoint=killed, state_path=state, variants=variants)
    resumed = band_student.fit_band_student(*arguments, print, state_path=state, variants=variants)
    for name, value in whole.network.state_dict().items():
        np.testing.assert_allclose(resumed.network.state_dict()[name].numpy(), value.numpy(), atol=1e-6)


@pytest.fixture
def one_thread():
    """Torch on one thread (see tests/test_band_student.py: multi-threaded CPU convolution
    gradients are not bit-repeatable)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
