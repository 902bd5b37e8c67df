"""Fine-tuning the teachers' last layers (qbsd_cli.training.finetune) on real clips: the
tuned network starts exactly at the frozen model, training moves it deterministically, and
the exported graph scores songs as the trained network does while its teacher-derived tags
stay the frozen teachers' own."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from qbsd_cli import logmel  # noqa: E402
from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.training import accurate, finetune  # noqa: E402
from qbsd_cli.training.teacher import compute_outputs, load_outputs  # noqa: E402

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def taught(clip_paths, tmp_path_factory):
    """Teacher outputs, pooled features and labels of 12 real clips, and the frozen heads."""
    paths = clip_paths[:12]
    cache = tmp_path_factory.mktemp("teacher-outputs")
    compute_outputs(paths, str(cache), str(accurate.TEACHER_DIR), log=lambda *_: None)
    outputs = [load_outputs(path, str(cache)) for path in paths]
    pooled = finetune.pooled_features(paths, finetune.pooled_cache(cache), accurate.TEACHER_DIR, log=lambda *_: None)
    clip_features = np.stack([accurate.patch_features(o).mean(axis=0) for o in outputs]).astype(np.float64)
    rng = np.random.default_rng(0)
    labels = np.zeros((len(paths), 4), dtype=np.float32)
    labels[np.arange(len(paths)), rng.permutation(np.arange(len(paths)) % 4)] = 1  # a quadrant each
    heads = accurate.fit_heads(clip_features, labels)
    return paths, outputs, pooled, labels, heads, finetune.backend_weights(accurate.TEACHER_DIR)


def test_the_untrained_network_is_the_frozen_model(taught):
    paths, outputs, pooled, labels, heads, backend = taught
    weights, bias = heads.folded()
    untrained = finetune.FineTuned({t: {k: backend[t][k] for k in finetune.TUNED} for t in backend}, weights, bias)
    frozen = accurate.song_scores(heads, [accurate.patch_features(o) for o in outputs])
    np.testing.assert_allclose(untrained.song_scores(backend, pooled), frozen, atol=1e-5)


def test_fine_tuning_moves_the_layers_deterministically(taught):
    paths, outputs, pooled, labels, heads, backend = taught
    first = finetune.fine_tune(pooled, labels, heads, backend, epochs=2)
    again = finetune.fine_tune(pooled, labels, heads, backend, epochs=2)
    for teacher in backend:
        for key in finetune.TUNED:
            np.testing.assert_array_equal(first.backends[teacher][key], again.backends[teacher][key])
        assert np.abs(first.backends[teacher]["dense_weights"] - backend[teacher]["dense_weights"]).max() > 0
    weights, _ = heads.folded()
    assert np.abs(first.weights - weights).max() > 0


def test_the_exported_graph_scores_as_the_tuned_network(taught, tmp_path):
    import onnxruntime

    paths, outputs, pooled, labels, heads, backend = taught
    tuned = finetune.fine_tune(pooled, labels, heads, backend, epochs=2)
    tags = [f"quadrant:q{i}" for i in range(1, 5)]
    tuned_path, frozen_path = tmp_path / "tuned.onnx", tmp_path / "frozen.onnx"
    model_id = accurate.build_onnx(heads, tags, tuned_path, "12 clips", fine_tuned=tuned)
    assert model_id.startswith(f"qbsd-{accurate.FINETUNED_RECIPE}-")
    accurate.build_onnx(heads, tags, frozen_path, "12 clips")
    sessions = [
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for path in (tuned_path, frozen_path)
    ]
    expected = tuned.song_scores(backend, pooled)
    for number, path in enumerate(paths[:4]):
        patches = logmel.patches(logmel.log_mel(decode(path, logmel.SAMPLE_RATE).samples))
        tuned_tags, frozen_tags = (session.run(["tags"], {"patches": patches})[0] for session in sessions)
        np.testing.assert_allclose(tuned_tags[:, :4].mean(axis=0), expected[number], atol=1e-4)
        # the teacher-derived columns are the frozen teachers' in both graphs
        np.testing.assert_allclose(tuned_tags[:, 4:], frozen_tags[:, 4:], atol=1e-6)
