"""The band student (training/band_student.py) and the `mfcc-bands` front end: windows cut
the same way in training and at run time, and a blend with a band-student half, exported
to ONNX, analysed by TagModel exactly as its torch modules compute it. Generated audio and
generated teacher outputs: no corpus or teacher needed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from helpers import write_chord  # noqa: E402

from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.features import FeatureParams, song_statistics  # noqa: E402
from qbsd_cli.frontends import BAND_WINDOW_FRAMES, MfccBandsFrontEnd, MfccFrontEnd, band_windows  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402
from qbsd_cli.training import accurate, band_student, student  # noqa: E402
from qbsd_cli.training.export import export_onnx, librosa_mel_basis  # noqa: E402
from qbsd_cli.training.network import (  # noqa: E402
    BandStudentNetwork,
    BandStudentTagger,
    HybridTagger,
    StatisticsStudentModule,
)


def test_band_windows_cut_and_pad():
    bands = np.arange(2 * BAND_WINDOW_FRAMES + 7, dtype=np.float32)[:, None] * np.ones(96, dtype=np.float32)
    windows = band_windows(bands)
    assert windows.shape == (2, BAND_WINDOW_FRAMES, 96)
    assert windows[1, 0, 0] == BAND_WINDOW_FRAMES  # consecutive, no overlap; the 7 left over dropped
    short = band_windows(bands[:100])
    assert short.shape == (1, BAND_WINDOW_FRAMES, 96)
    assert np.all(short[0, 100:] == 0) and short[0, 99, 0] == 99  # silence after the audio


def test_the_bands_front_end_keeps_the_mfcc_frames(tmp_path):
    params = FeatureParams()
    mel_basis = librosa_mel_basis(params)
    samples = decode(str(write_chord(tmp_path / "chord.wav", seconds=7.0)), params.sample_rate).samples
    windows, frames, statistics = MfccBandsFrontEnd(params, mel_basis).patches_and_bands(samples)
    _, mfcc_frames, mfcc_statistics = MfccFrontEnd(params, mel_basis).patches_and_bands(samples)
    np.testing.assert_array_equal(frames, mfcc_frames)
    np.testing.assert_array_equal(statistics, mfcc_statistics)
    assert windows.shape == (len(frames) // BAND_WINDOW_FRAMES, BAND_WINDOW_FRAMES, 96)
    np.testing.assert_array_equal(
        windows.reshape(-1, 96), MfccBandsFrontEnd(params, mel_basis).bands(samples)[: 2 * 258]
    )
    assert MfccBandsFrontEnd(params, mel_basis).patches(samples[: params.sample_rate // 2])[0].shape[0] == 0


def test_training_windows_start_at_the_teacher_patches():
    outputs = {"segment": np.array([0, 0, 1], np.int32), "start": np.array([0.0, 2.992, 30.0], np.float32)}
    for teacher in ("MTT_musicnn", "MSD_musicnn"):
        outputs[f"{teacher}/penultimate"] = np.zeros((3, 200), np.float32)
        outputs[f"{teacher}/probabilities"] = np.full((3, 50), 0.5, np.float32)
    starts, targets = band_student.patch_windows(np.zeros((2, band_student.SEGMENT_FRAMES, 96), np.float16), outputs)
    assert starts.tolist() == [[0, 0], [0, 258], [1, 0]]  # 2.992 s = 257.7 frames of 11.6 ms
    assert targets.shape == (3, 500)
    # a patch of a segment past the cached ones is left out
    assert len(band_student.patch_windows(np.zeros((1, band_student.SEGMENT_FRAMES, 96), np.float16), outputs)[0]) == 2


def small_blend(rng, n_tags: int, matrix: np.ndarray, weight: float):
    network = BandStudentNetwork(
        rng.random(96), rng.random(96) + 0.5, rng.random(500), rng.random(500) + 0.1, width=8, dropout=0.0
    ).eval()
    heads = accurate.Heads(
        rng.random(500), rng.random(500) + 0.5, rng.standard_normal((500, n_tags)) / 20, rng.standard_normal(n_tags)
    )
    corpus_x, corpus_y = rng.standard_normal((200, 502)), rng.random((200, 500))
    clips_x = [rng.standard_normal((1, 502)) for _ in range(30)]
    clips_y = [rng.random((1, 500)) for _ in clips_x]
    taught = student.fit_student(
        corpus_x, corpus_y, clips_x, clips_y, (rng.random((30, n_tags)) < 0.4).astype(np.float32)
    )
    band = BandStudentTagger(network, heads, matrix)
    return HybridTagger(band, StatisticsStudentModule(taught, matrix, with_bands=True), weight), band


#: the vocabulary of `exported_small_blend`: four 4Q tags, then two teacher-derived ones
SMALL_BLEND_TAGS = ["mood:a", "mood:b", "quadrant:q1", "genre:c", "instrument:x", "voice:y"]


def exported_small_blend(seed: int, path):
    """A `small_blend` (w = 0.3, two teacher-derived tags) exported to ONNX at `path`:
    (the blend, its band half, its teacher-tag matrix, the model id)."""
    matrix = np.zeros((100, 2), dtype=np.float32)
    matrix[[0, 1], 0] = 0.5
    matrix[70, 1] = 1.0
    blend, band = small_blend(np.random.default_rng(seed), 4, matrix, weight=0.3)
    params = FeatureParams()
    model_id = export_onnx(
        blend,
        str(path),
        SMALL_BLEND_TAGS,
        params,
        librosa_mel_basis(params),
        "test-band",
        "test",
        "generated",
        False,
        band_windows=True,
    )
    return blend, band, matrix, model_id


def test_an_exported_band_blend_runs_as_its_modules_compute(tmp_path):
    path = tmp_path / "band.onnx"
    blend, band, matrix, _model_id = exported_small_blend(3, path)
    params, tags = FeatureParams(), SMALL_BLEND_TAGS
    model = TagModel(path)
    assert model.info.front_end == "mfcc-bands" and model.tags == tags
    samples = decode(str(write_chord(tmp_path / "chord.wav", seconds=8.0)), params.sample_rate).samples
    windows, frames, bands = model.front_end.patches_and_bands(samples)
    with torch.no_grad():
        per_window = band(torch.from_numpy(windows)).numpy()
        statistics = blend.statistics_model(
            torch.from_numpy(np.concatenate([song_statistics(frames), bands])[None])
        ).numpy()[0]
    np.testing.assert_allclose(model.patch_outputs(windows), per_window, atol=1e-5)
    expected = 0.7 * per_window.mean(axis=0) + 0.3 * statistics
    np.testing.assert_allclose(model.vector_from_samples(samples), expected, atol=1e-5)
    # the teacher-derived columns: the clipped teacher probabilities through the synonym matrix
    with torch.no_grad():
        teacher = band.network(torch.from_numpy(windows)).numpy()
    np.testing.assert_allclose(per_window[:, 4:], np.clip(teacher[:, 400:], 0, 1) @ matrix, atol=1e-5)


def test_teaching_lowers_the_distillation_loss():
    rng = np.random.default_rng(4)
    frames = [rng.standard_normal((1, band_student.SEGMENT_FRAMES, 96)).astype(np.float16) for _ in range(6)]
    starts = [np.array([[0, t] for t in range(0, 2300, 258)]) for _ in frames]
    # targets that depend on the windows' content: their mean per band group
    targets = []
    for f, s in zip(frames, starts):
        windows = band_student.gather([f], np.zeros(len(s), int), s)
        targets.append(np.repeat(windows.mean(axis=1)[:, :50], 10, axis=1).astype(np.float32))
    losses = []
    settings = band_student.BandStudentSettings(width=8, epochs=6, batch_size=8, jitter_frames=0)
    band_student.fit_band_student(frames, starts, targets, np.arange(6), settings, log=losses.append)
    first, last = (float(line.split("loss ")[1].split()[0]) for line in (losses[0], losses[-1]))
    assert last < first


def test_short_tails_are_skipped_in_training_and_at_run_time():
    """A 30.2 s clip: its second segment (0.2 s) gets no window from the cache, as the run-time
    front end skips a later segment under 3 s and the teacher outputs have no patch there."""
    cache = np.full((2, band_student.SEGMENT_FRAMES, 96), np.nan, dtype=np.float16)
    cache[0] = 1.0
    cache[1, :18] = 1.0
    assert band_student.clip_windows(cache).shape == (10, BAND_WINDOW_FRAMES, 96)
    cache[1, :300] = 1.0  # 3.5 s: analysed, one window
    assert band_student.clip_windows(cache).shape == (11, BAND_WINDOW_FRAMES, 96)
    params = FeatureParams()
    front_end = MfccBandsFrontEnd(params, librosa_mel_basis(params))
    assert front_end.min_later_segment_seconds == 3.0 and front_end.min_seconds == 1.0


def test_mixup_mixes_windows_as_power_and_targets_with_the_same_share():
    rng = np.random.default_rng(5)
    windows = np.log10(10000 * rng.random((16, 20, 96)).astype(np.float32) + 1)
    targets = rng.standard_normal((16, 7)).astype(np.float32)
    mixed_windows, mixed_targets = band_student.mix_windows(windows, targets, np.random.default_rng(1), 1.0, 0.4)
    # replay the draws to find each row's partner and share
    replay = np.random.default_rng(1)
    rows = np.flatnonzero(replay.random(16) < 1.0)
    partners = replay.integers(0, 16, size=len(rows))
    lam = replay.beta(0.4, 0.4, size=len(rows)).astype(np.float32)
    power = lambda w: np.power(10.0, w.astype(np.float64)) - 1  # noqa: E731
    expected = np.log10(
        lam[:, None, None] * power(windows[rows]) + (1 - lam[:, None, None]) * power(windows[partners]) + 1
    )
    np.testing.assert_allclose(mixed_windows[rows], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        mixed_targets[rows], lam[:, None] * targets[rows] + (1 - lam[:, None]) * targets[partners], atol=1e-6
    )
    # a mix of equal windows is that window; the inputs are not changed in place
    same, _ = band_student.mix_windows(np.repeat(windows[:1], 4, 0), targets[:4], rng, 1.0, 0.4)
    np.testing.assert_allclose(same, np.repeat(windows[:1], 4, 0), atol=1e-4)
    assert np.array_equal(
        windows, np.log10(10000 * np.random.default_rng(5).random((16, 20, 96)).astype(np.float32) + 1)
    )
    untouched, _ = band_student.mix_windows(windows, targets, rng, 0.0, 0.4)
    assert np.array_equal(untouched, windows)


def test_head_logits_are_the_heads_before_their_sigmoid():
    rng = np.random.default_rng(6)
    features = rng.standard_normal((40, 500))
    labels = (features[:, :3] > 0).astype(float)
    heads = accurate.fit_heads(features, labels)
    logits = band_student.head_logit_targets(heads, features)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), heads.probabilities(features), atol=1e-4)


def test_auxiliary_targets_are_learnt_and_then_dropped_from_the_network():
    rng = np.random.default_rng(7)
    frames = [rng.standard_normal((1, band_student.SEGMENT_FRAMES, 96)).astype(np.float16) for _ in range(4)]
    starts = [np.array([[0, t] for t in range(0, 2300, 258)]) for _ in frames]
    targets = [rng.standard_normal((len(s), 12)).astype(np.float32) for s in starts]
    auxiliary = [t[:, :3] * 2 for t in targets]
    checkpoints = []
    settings = band_student.BandStudentSettings(
        width=8, epochs=3, batch_size=8, mixup_share=0.5, head_targets=True, checkpoints=(1, 2)
    )
    taught = band_student.fit_band_student(
        frames,
        starts,
        targets,
        np.arange(4),
        settings,
        log=lambda line: None,
        auxiliary=auxiliary,
        on_checkpoint=lambda epoch, student: checkpoints.append((epoch, student.network.out.out_features)),
    )
    # the network handed on estimates the 12 teacher outputs only, at every checkpoint too
    assert checkpoints == [(1, 12), (2, 12)]
    windows = band_student.gather(frames, np.zeros(3, int), starts[0][:3])
    assert taught.teacher_features(windows).shape == (3, 12)
    assert not taught.network.training


def _tiny_corpus(seed: int):
    rng = np.random.default_rng(seed)
    frames = [rng.standard_normal((1, band_student.SEGMENT_FRAMES, 96)).astype(np.float16) for _ in range(5)]
    starts = [np.array([[0, t] for t in range(0, 2300, 258)]) for _ in frames]
    targets = [rng.standard_normal((len(s), 500)).astype(np.float32) for s in starts]
    return band_student.BandData(frames, starts, targets, n_clips=2)


@pytest.fixture
def one_thread():
    """Torch on one thread: with several, a CPU convolution's gradient may sum its parts in
    a different order from run to run on a loaded machine, and three epochs at a high
    learning rate grow that last-bit difference to about 0.005, which would hide whether
    resuming changed anything."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_a_killed_training_resumes_where_it_stopped(tmp_path):
    data = _tiny_corpus(8)
    settings = band_student.BandStudentSettings(width=8, epochs=3, batch_size=8, mixup_share=0.5, checkpoints=(2,))
    files = np.arange(5)
    whole = band_student.fit_band_student(data.band_frames, data.starts, data.targets, files, settings, log=print)

    def killed(epoch, student):
        raise KeyboardInterrupt

    state = str(tmp_path / "state.pt")
    with pytest.raises(KeyboardInterrupt):
        band_student.fit_band_student(
            data.band_frames, data.starts, data.targets, files, settings, print, on_checkpoint=killed, state_path=state
        )
    lines = []
    resumed = band_student.fit_band_student(
        data.band_frames, data.starts, data.targets, files, settings, lines.append, state_path=state
    )
    assert "resuming after epoch 2" in lines[0] and len(lines) == 2  # only epoch 3 trained again
    for name, value in whole.network.state_dict().items():
        np.testing.assert_allclose(resumed.network.state_dict()[name].numpy(), value.numpy(), atol=1e-6)


def test_the_corpus_stage_is_trained_once_without_clips_and_shared(tmp_path):
    data = _tiny_corpus(9)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    settings = band_student.BandStudentSettings(
        width=8, epochs=1, batch_size=8, pretrain_epochs=2, head_targets=True, checkpoints=(1,)
    )
    points, lines = [], []
    first, windows = band_student.teach(
        data, np.arange(2), labels, settings, lines.append, lambda e, s, w, stage: points.append((e, stage)), tmp_path
    )
    # the corpus stage saw the 3 corpus files only: 3 x 9 windows, 4 batches of 8 an epoch
    assert any("on the corpus alone" in line for line in lines)
    assert points == [(1, "corpus only"), (2, "corpus only")]
    again_lines = []
    second, again = band_student.teach(data, np.arange(2), labels, settings, again_lines.append, cache_dir=tmp_path)
    assert not any("on the corpus alone" in line for line in again_lines)  # reused from the cache
    np.testing.assert_allclose(windows[0], again[0], atol=1e-5)
    assert second.network.out.out_features == 500 and windows[0].shape[1] == 500


@pytest.mark.usefixtures("one_thread")
def test_a_killed_fold_resumes_from_its_state_file(tmp_path):
    # cross-validation passes each fold a state file (evaluation._teacher_folds): a fold
    # killed after epoch 2 of 3 trains only epoch 3 again and ends where an unbroken run does
    data = _tiny_corpus(10)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    settings = band_student.BandStudentSettings(width=8, epochs=3, batch_size=8, checkpoints=(2,))
    _, whole = band_student.teach(data, np.arange(2), labels, settings, print)

    def killed(epoch, student, windows, stage):
        raise KeyboardInterrupt

    state = str(tmp_path / "fold0.state.pt")
    with pytest.raises(KeyboardInterrupt):
        band_student.teach(data, np.arange(2), labels, settings, print, killed, state_path=state)
    lines = []
    _, resumed = band_student.teach(data, np.arange(2), labels, settings, lines.append, state_path=state)
    assert "resuming after epoch 2" in lines[0]
    np.testing.assert_allclose(resumed[0], whole[0], atol=1e-5)


def test_a_training_resumes_only_the_very_same_training(tmp_path):
    # `qbsd train` keeps its band student's state under the cache, keyed by what it learns
    data = _tiny_corpus(11)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    settings = band_student.BandStudentSettings(width=8, epochs=2, batch_size=8)
    clips = np.arange(2)
    path = band_student.training_state_path(data, clips, labels, settings, str(tmp_path))
    assert path == band_student.training_state_path(data, clips, labels, settings, str(tmp_path))
    assert path.startswith(str(tmp_path / "band-student-state"))
    others = {
        band_student.training_state_path(data, clips, labels[::-1], settings, str(tmp_path)),
        band_student.training_state_path(data, clips[:1], labels[:1], settings, str(tmp_path)),
        band_student.training_state_path(data, clips, labels, band_student.WIDE_SETTINGS, str(tmp_path)),
    }
    assert path not in others and len(others) == 3
