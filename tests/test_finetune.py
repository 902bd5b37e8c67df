"""Fine-tuning the teachers' last layers, and the top of their mid-end
(qbsd_cli.training.finetune), on real clips: the tuned network starts exactly at the frozen
model, training moves it deterministically, and the exported graph scores songs as the
trained network does while its teacher-derived tags stay the frozen teachers' own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from qbsd_cli import logmel  # noqa: E402
from qbsd_cli.audio import decode  # noqa: E402
from qbsd_cli.training import accurate, finetune  # noqa: E402
from qbsd_cli.training.teacher import compute_outputs, load_outputs  # noqa: E402

pytestmark = pytest.mark.shared_data


MIDEND = finetune.METHODS[finetune.MIDEND_METHOD]


@pytest.fixture(scope="module")
def taught(clip_paths, tmp_path_factory):
    """Teacher outputs, fine-tuning inputs (with the mid-end's) and labels of 12 real
    clips, and the frozen heads."""
    paths = clip_paths[:12]
    cache = tmp_path_factory.mktemp("cache") / "teacher-outputs"
    compute_outputs(paths, str(cache), str(accurate.TEACHER_DIR), log=lambda *_: None)
    outputs = [load_outputs(path, str(cache)) for path in paths]
    inputs = finetune.training_inputs(paths, True, cache, accurate.TEACHER_DIR, log=lambda *_: None)
    clip_features = np.stack([accurate.patch_features(o).mean(axis=0) for o in outputs]).astype(np.float64)
    rng = np.random.default_rng(0)
    labels = np.zeros((len(paths), 4), dtype=np.float32)
    labels[np.arange(len(paths)), rng.permutation(np.arange(len(paths)) % 4)] = 1  # a quadrant each
    heads = accurate.fit_heads(clip_features, labels)
    return paths, outputs, inputs, labels, heads


def short(settings: finetune.FineTuneSettings) -> finetune.FineTuneSettings:
    return replace(settings, epochs=2)


def test_the_untrained_network_is_the_frozen_model(taught):
    paths, outputs, inputs, labels, heads = taught
    weights, bias = heads.folded()
    backends = {t: {k: inputs.backend[t][k] for k in finetune.TUNED} for t in inputs.backend}
    frozen = accurate.song_scores(heads, [accurate.patch_features(o) for o in outputs])
    untrained = finetune.FineTuned(backends, weights, bias)
    np.testing.assert_allclose(untrained.song_scores(inputs), frozen, atol=1e-5)
    # the mid-end recomputed in torch from its first layer's output, as the graph pools it
    with_midend = finetune.FineTuned(backends, weights, bias, inputs.layers)
    np.testing.assert_allclose(with_midend.song_scores(inputs), frozen, atol=1e-5)


def test_the_mid_end_inputs_are_the_first_mid_end_layer_per_patch(taught):
    paths, outputs, inputs, labels, heads = taught
    for pooled, midend in zip(inputs.pooled, inputs.midend):
        assert midend.shape == (len(pooled), 2, finetune.MIDEND_CHANNELS, 187)
        # its max and mean over time are the pooled features' channels 561-624
        start = 2 * finetune.FRONT_END_CHANNELS
        np.testing.assert_allclose(pooled[:, :, start : start + 128 : 2], midend.max(axis=3), atol=1e-5)
        np.testing.assert_allclose(pooled[:, :, start + 1 : start + 128 : 2], midend.mean(axis=3), atol=1e-4)


def test_the_mid_end_layers_are_the_pruned_teachers_live_filters(taught):
    paths, outputs, inputs, labels, heads = taught
    layers = [layer for teacher_layers in inputs.layers.values() for layer in teacher_layers]
    for layer in layers:
        # `order` puts a live filter's channel among the first len(weights), a dead one after
        live = layer.order < len(layer.weights)
        assert live.sum() == len(layer.weights) and len(layer.order) == finetune.MIDEND_CHANNELS
        assert layer.weights.shape[1:] == (1, 7, finetune.MIDEND_CHANNELS)
        assert not layer.constants[live].any()
    assert any(len(layer.weights) < finetune.MIDEND_CHANNELS for layer in layers)


@pytest.mark.parametrize("settings", [finetune.FineTuneSettings(), MIDEND], ids=["last layers", "mid-end"])
def test_fine_tuning_moves_the_layers_deterministically(taught, settings):
    paths, outputs, inputs, labels, heads = taught
    first = finetune.fine_tune(inputs, labels, heads, short(settings))
    again = finetune.fine_tune(inputs, labels, heads, short(settings))
    for teacher in inputs.backend:
        for key in finetune.TUNED:
            np.testing.assert_array_equal(first.backends[teacher][key], again.backends[teacher][key])
        assert np.abs(first.backends[teacher]["dense_weights"] - inputs.backend[teacher]["dense_weights"]).max() > 0
    weights, _ = heads.folded()
    assert np.abs(first.weights - weights).max() > 0
    if settings.midend:
        for teacher, layers in first.midends.items():
            for tuned, frozen, repeated in zip(layers, inputs.layers[teacher], again.midends[teacher]):
                np.testing.assert_array_equal(tuned.weights, repeated.weights)
                assert tuned.weights.shape == frozen.weights.shape
                assert np.abs(tuned.weights - frozen.weights).max() > 0
                # the dead filters stay dead: their channels' places and constants as the teacher's
                np.testing.assert_array_equal(tuned.order, frozen.order)
                np.testing.assert_array_equal(tuned.constants, frozen.constants)
    else:
        assert first.midends is None


def test_the_mid_end_needs_its_inputs(taught):
    paths, outputs, inputs, labels, heads = taught
    without = finetune.TrainingInputs(inputs.pooled, None, inputs.backend, None)
    with pytest.raises(ValueError, match="mid-end"):
        finetune.fine_tune(without, labels, heads, short(MIDEND))
    weights, bias = heads.folded()
    tuned = finetune.FineTuned(
        {t: {k: inputs.backend[t][k] for k in finetune.TUNED} for t in inputs.backend}, weights, bias, inputs.layers
    )
    with pytest.raises(ValueError, match="mid-end inputs"):
        tuned.song_scores(without)


def test_the_fine_tuning_methods_are_the_accurate_recipes():
    assert set(finetune.METHODS) == set(accurate.FINETUNING_RECIPES)
    assert finetune.METHODS[accurate.MIDEND_RECIPE].midend and not finetune.METHODS[accurate.FINETUNED_RECIPE].midend


def sessions_of(*paths):
    import onnxruntime

    return [onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in paths]


def clip_patches(path) -> np.ndarray:
    return logmel.patches(logmel.log_mel(decode(path, logmel.SAMPLE_RATE).samples))


def test_the_exported_untuned_mid_end_copy_is_the_frozen_model(taught, tmp_path):
    """The mid-end copy in the graph, with the frozen layers in it, scores as the frozen
    teachers: the copy itself (its wiring and renaming) changes nothing."""
    paths, outputs, inputs, labels, heads = taught
    weights, bias = heads.folded()
    backends = {t: {k: inputs.backend[t][k] for k in finetune.TUNED} for t in inputs.backend}
    untuned = finetune.FineTuned(backends, weights, bias, inputs.layers)
    tags = [f"quadrant:q{i}" for i in range(1, 5)]
    copied, frozen = tmp_path / "copied.onnx", tmp_path / "frozen.onnx"
    accurate.build_onnx(heads, tags, copied, "12 clips", fine_tuned=untuned)
    accurate.build_onnx(heads, tags, frozen, "12 clips")
    sessions = sessions_of(copied, frozen)
    patches = clip_patches(paths[0])
    copied_tags, frozen_tags = (session.run(["tags"], {"patches": patches})[0] for session in sessions)
    np.testing.assert_allclose(copied_tags, frozen_tags, atol=1e-5)


@pytest.mark.parametrize(
    "settings, recipe",
    [(finetune.FineTuneSettings(), accurate.FINETUNED_RECIPE), (MIDEND, accurate.MIDEND_RECIPE)],
    ids=["last layers", "mid-end"],
)
def test_the_exported_graph_scores_as_the_tuned_network(taught, tmp_path, settings, recipe):
    import onnx
    from onnx import numpy_helper

    paths, outputs, inputs, labels, heads = taught
    # a large step, so that the tuned layers move the scores far more than the tolerance
    tuned = finetune.fine_tune(inputs, labels, heads, replace(settings, epochs=2, learning_rate=3e-3))
    if settings.midend:
        frozen_midend = replace(tuned, midends=inputs.layers)
        assert np.abs(tuned.song_scores(inputs) - frozen_midend.song_scores(inputs)).max() > 1e-2
    tags = [f"quadrant:q{i}" for i in range(1, 5)]
    tuned_path, frozen_path = tmp_path / "tuned.onnx", tmp_path / "frozen.onnx"
    model_id = accurate.build_onnx(heads, tags, tuned_path, "12 clips", fine_tuned=tuned)
    assert model_id.startswith(f"qbsd-{recipe}-")
    accurate.build_onnx(heads, tags, frozen_path, "12 clips")
    sessions = sessions_of(tuned_path, frozen_path)
    expected = tuned.song_scores(inputs)
    for number, path in enumerate(paths[:4]):
        tuned_tags, frozen_tags = (session.run(["tags"], {"patches": clip_patches(path)})[0] for session in sessions)
        np.testing.assert_allclose(tuned_tags[:, :4].mean(axis=0), expected[number], atol=1e-4)
        # the teacher-derived columns are the frozen teachers' in both graphs
        np.testing.assert_allclose(tuned_tags[:, 4:], frozen_tags[:, 4:], atol=1e-6)
    if settings.midend:  # the graph's tuned convolutions hold the tuned weights
        graph = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tuned_path)).graph.initializer}
        for teacher, prefix in zip(finetune.OUTPUT_TEACHERS, ("mtt/", "msd/")):
            for name, layer in zip(finetune.MIDEND_CONVS, tuned.midends[teacher]):
                np.testing.assert_array_equal(graph[f"{prefix}tuned-midend/{name}"], layer.weights)
