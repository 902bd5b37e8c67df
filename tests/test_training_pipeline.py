"""A small real training run (24 clips, one epoch) through ONNX export and onnxruntime parity.

Keeps the training pipeline from rotting in CI; the full evaluation is `qbsd evaluate`.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from qbsd_cli.features import FeatureParams, frames_to_patches  # noqa: E402
from qbsd_cli.model import TagModel, read_metadata  # noqa: E402
from qbsd_cli.training.datasets import load_moods4q  # noqa: E402
from qbsd_cli.training.export import export_onnx, librosa_mel_basis  # noqa: E402
from qbsd_cli.training.feature_cache import song_frames  # noqa: E402
from qbsd_cli.training.recipes import RECIPES, ad_weights, positive_weights, train, with_overrides  # noqa: E402


@pytest.fixture(scope="module")
def small_run(moods4q_root, tmp_path_factory):
    songs = load_moods4q(moods4q_root).subset(range(24))
    params = FeatureParams()
    mel_basis = librosa_mel_basis(params)
    frames = song_frames(songs.paths, params, mel_basis, cache_dir=str(tmp_path_factory.mktemp("cache")), jobs=2)
    recipe = with_overrides(RECIPES["cnn-songpool"], epochs=1)
    trained = train(frames, songs.labels, songs.groups, params, recipe)
    path = tmp_path_factory.mktemp("model") / "small.onnx"
    model_id = export_onnx(
        trained.network,
        str(path),
        songs.tags,
        params,
        mel_basis,
        recipe.name,
        recipe.describe(),
        songs.description,
        recipe.paper_faithful,
    )
    return songs, params, frames, trained, path, model_id


def test_onnx_matches_pytorch_on_real_patches(small_run):
    songs, params, frames, trained, path, _ = small_run
    patches = np.concatenate([frames_to_patches(f, params)[:8] for f in frames[:4]])
    with torch.no_grad():
        expected = trained.network(torch.from_numpy(patches)).numpy()
    actual = TagModel(path).patch_outputs(patches)
    assert actual.shape == (len(patches), len(songs.tags))
    assert np.abs(actual - expected).max() < 1e-5


def test_model_is_self_describing(small_run):
    songs, params, _, _, path, model_id = small_run
    metadata = read_metadata(path)
    assert metadata["qbsd.model_id"] == model_id and model_id.startswith("qbsd-cnn-songpool-")
    assert json.loads(metadata["qbsd.tags"]) == songs.tags
    assert FeatureParams.from_json(metadata["qbsd.feature_params"]) == params
    model = TagModel(path)
    np.testing.assert_allclose(model.extractor.mel_basis, librosa_mel_basis(params))
    # end to end from the audio file: same as the training-side features + network
    vector = model.analyse(songs.paths[0]).vector
    with torch.no_grad():
        expected = small_run[3].network(torch.from_numpy(frames_to_patches(small_run[2][0], params))).numpy().mean(0)
    assert np.abs(vector - expected).max() < 1e-4


def test_every_recipe_runs_one_short_epoch(small_run):
    songs, params, frames, _, _, _ = small_run
    for name in ("paper", "paper-ad-smote", "cnn-bce-pos-smote", "cnn-tf-pool-mixup", "cnn-tf-pos-ctx20"):
        recipe = with_overrides(RECIPES[name], epochs=1, patches_per_song=1)
        trained = train(frames, songs.labels, songs.groups, params, recipe)
        assert np.isfinite(trained.history[-1]["loss"])


def test_imbalance_weights():
    labels = np.zeros((100, 3), dtype=np.uint8)
    labels[:50, 0] = 1
    labels[:5, 1] = 1
    labels[:1, 2] = 1
    ad = ad_weights(labels)  # eq. (4)-(5): 1 - f/sum(f) + 1/N
    np.testing.assert_allclose(ad, [1 - 50 / 56 + 1 / 3, 1 - 5 / 56 + 1 / 3, 1 - 1 / 56 + 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(positive_weights(labels), [1.0, 19.0, 50.0])


def test_ensemble_exports_as_one_averaged_graph(small_run, tmp_path):
    from qbsd_cli.training.network import EnsembleCNN

    songs, params, frames, trained, _, _ = small_run
    second = train(
        frames,
        songs.labels,
        songs.groups,
        params,
        with_overrides(RECIPES["cnn-bce-pos"], epochs=1, patches_per_song=2, seed=1),
    ).network
    ensemble = EnsembleCNN([trained.network, second])
    path = tmp_path / "ensemble.onnx"
    export_onnx(
        ensemble,
        str(path),
        songs.tags,
        params,
        librosa_mel_basis(params),
        "cnn-ensemble",
        "test",
        songs.description,
        False,
    )
    patches = frames_to_patches(frames[0], params)[:16]
    with torch.no_grad():
        expected = (trained.network(torch.from_numpy(patches)) + second(torch.from_numpy(patches))).numpy() / 2
    assert np.abs(TagModel(path).patch_outputs(patches) - expected).max() < 1e-5


def test_blend_exports_both_models_and_mixes_them_by_the_stored_weight(small_run, tmp_path):
    from qbsd_cli.features import song_statistics
    from qbsd_cli.training.network import HybridTagger, StatisticsMLP
    from qbsd_cli.training.recipes import fit_statistics_model

    songs, params, frames, trained, _, _ = small_run
    statistics_model = fit_statistics_model(np.stack([song_statistics(f) for f in frames]), songs.labels)
    hybrid = HybridTagger(trained.network, StatisticsMLP(statistics_model), 0.3)
    path = tmp_path / "blend.onnx"
    model_id = export_onnx(
        hybrid,
        str(path),
        songs.tags,
        params,
        librosa_mel_basis(params),
        "cnn-tf-stats",
        "test",
        songs.description,
        False,
    )
    assert model_id.startswith("qbsd-cnn-tf-stats-")
    model = TagModel(path)
    assert model.statistics_weight == 0.3
    statistics = np.stack([song_statistics(f) for f in frames[:6]])
    # the exported MLP is sklearn's, including the prior of tags it could not learn
    np.testing.assert_allclose(model.statistics_outputs(statistics), statistics_model.predict(statistics), atol=1e-5)
    # the patch model alone is unchanged, and a caller may feed patches without statistics
    patches = frames_to_patches(frames[0], params)[:16]
    with torch.no_grad():
        expected_patches = trained.network(torch.from_numpy(patches)).numpy()
    np.testing.assert_allclose(model.patch_outputs(patches), expected_patches, atol=1e-5)
    # end to end from the audio file: 0.7 x mean of patches + 0.3 x statistics model
    vector = model.analyse(songs.paths[0]).vector
    with torch.no_grad():
        patch_mean = trained.network(torch.from_numpy(frames_to_patches(frames[0], params))).numpy().mean(0)
    expected = 0.7 * patch_mean + 0.3 * statistics_model.predict(song_statistics(frames[0])[None])[0]
    assert np.abs(vector - expected).max() < 1e-4


def test_cross_validated_blend_mixes_its_members_out_of_fold_scores(small_run, tmp_path, monkeypatch):
    from qbsd_cli.training import evaluation
    from qbsd_cli.training import recipes as training

    songs, params, frames, _, _, _ = small_run
    monkeypatch.setitem(
        training.RECIPES,
        "tiny",
        with_overrides(RECIPES["cnn-tf-pool"], name="tiny", epochs=1, patience=0, patches_per_song=2),
    )
    monkeypatch.setitem(training.BLENDS, "tiny-stats", training.Blend("tiny", 0.3))
    results = evaluation.cross_validate(
        songs,
        frames,
        params,
        ["tiny-stats", "tiny", "mlp-rich", "mlp"],
        str(tmp_path),
        n_folds=3,
        jobs=1,
        log=lambda _: None,
    )
    # the blend trains nothing of its own: its members' folds are all there is
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["mlp", "mlp-rich", "tiny"]
    np.testing.assert_allclose(results["tiny-stats"], 0.7 * results["tiny"] + 0.3 * results["mlp-rich"], atol=1e-6)
    comparisons = evaluation.compare_with_baseline(songs, results)
    assert set(comparisons) == {"tiny-stats vs mlp", "tiny-stats vs tiny", "tiny-stats vs mlp-rich"}


def test_a_blend_weight_without_the_statistics_output_is_refused(small_run, tmp_path):
    import onnx

    from qbsd_cli.model import ModelError

    path = tmp_path / "inconsistent.onnx"
    model = onnx.load(str(small_run[4]))  # a CNN alone: no statistics_tags output
    entry = model.metadata_props.add()
    entry.key, entry.value = "qbsd.statistics_weight", "0.6"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="not a qbsd model"):
        TagModel(path)
