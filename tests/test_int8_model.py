"""Int8 convolutions (training/quantise.py): a trained band blend quantised from its own
network inputs on real (generated) audio is a new, self-describing model that `TagModel`
analyses as closely as int8 allows; quantising is repeatable, refuses an int8 model, and
takes its calibration files evenly from a corpus manifest. The shipped fast model is such
a copy. Generated audio and a small generated network: no corpus or teacher needed."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from helpers import AudioFactory  # noqa: E402
from test_band_student import SMALL_BLEND_TAGS, exported_small_blend  # noqa: E402

from qbsd_cli.errors import QbsdError  # noqa: E402
from qbsd_cli.model import ModelInfo, TagModel, read_metadata  # noqa: E402
from qbsd_cli.training import quantise  # noqa: E402

TAGS = SMALL_BLEND_TAGS


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    path = folder / "float.onnx"
    _blend, _band, _matrix, model_id = exported_small_blend(5, path)
    music = AudioFactory(folder / "music")
    calibration = [
        str(music.chord("chord.wav", seconds=12.0)),
        str(music.noise("noise.flac", seconds=9.0)),
        str(music.chord("long.wav", seconds=65.0)),
    ]
    return path, model_id, calibration, music


def test_the_int8_model_is_a_new_self_describing_model(float_model, tmp_path):
    path, float_id, calibration, _music = float_model
    target = tmp_path / "int8.onnx"
    model_id = quantise.quantise_convolutions(path, target, calibration, calibration_note="generated", log=print)
    assert model_id.startswith("qbsd-test-band-int8-") and model_id != float_id
    metadata, float_metadata = read_metadata(target), read_metadata(path)
    assert metadata["qbsd.model_id"] == model_id
    for key in ("qbsd.tags", "qbsd.front_end", "qbsd.feature_params", "qbsd.mel_basis", "qbsd.statistics_weight"):
        assert metadata[key] == float_metadata[key]
    described = json.loads(metadata["qbsd.quantisation"])
    assert described["float_model_id"] == float_id and described["operators"] == ["Conv"]
    # one segment of each of the three files (CalibrationSettings.segments = 1)
    assert described["calibration"]["files"] == 3 and described["calibration"]["segments"] == 3
    assert "int8" in metadata["qbsd.summary"] and "generated" in metadata["qbsd.summary"]
    assert ModelInfo.read(target).model_id == model_id
    assert_int8_convolutions(target)


def assert_int8_convolutions(path) -> None:
    """Every convolution of the graph reads int8 weights through a DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    producers = {output: node for node in graph.node for output in node.output}
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert convolutions
    for node in convolutions:
        weight = producers[node.input[1]]
        assert weight.op_type == "DequantizeLinear"
        assert initialisers[weight.input[0]].data_type == onnx.TensorProto.INT8


def test_the_int8_model_analyses_music_as_the_float_model_does(float_model, tmp_path):
    path, _float_id, calibration, music = float_model
    target = tmp_path / "int8.onnx"
    quantise.quantise_convolutions(path, target, calibration, log=print)
    unseen = [music.chord("unseen.wav", seconds=20.0), music.noise("unseen-noise.wav", seconds=8.0)]
    float_vectors = np.stack([TagModel(path).analyse(str(p)).vector for p in unseen])
    int8_vectors = np.stack([TagModel(target).analyse(str(p)).vector for p in unseen])
    assert not np.array_equal(float_vectors, int8_vectors)  # the graph really changed
    np.testing.assert_allclose(int8_vectors, float_vectors, atol=0.05)
    cosines = (float_vectors * int8_vectors).sum(axis=1) / (
        np.linalg.norm(float_vectors, axis=1) * np.linalg.norm(int8_vectors, axis=1)
    )
    assert cosines.min() > 0.99


def test_quantising_is_repeatable_and_refuses_an_int8_model(float_model, tmp_path):
    path, _float_id, calibration, _music = float_model
    first = quantise.quantise_convolutions(path, tmp_path / "a.onnx", calibration, log=print)
    second = quantise.quantise_convolutions(path, tmp_path / "b.onnx", calibration, log=print)
    assert first == second
    other = quantise.quantise_convolutions(path, tmp_path / "c.onnx", calibration[:1], log=print)
    assert other != first  # other calibration, other ranges, other model
    with pytest.raises(QbsdError, match="already quantised"):
        quantise.quantise_convolutions(tmp_path / "a.onnx", tmp_path / "d.onnx", calibration, log=print)
    assert not (tmp_path / "d.onnx").exists()


def test_undecodable_calibration_files_are_skipped_and_none_at_all_is_an_error(float_model, tmp_path):
    path, _float_id, calibration, _music = float_model
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"not audio at all" * 100)
    said: list[str] = []
    quantise.quantise_convolutions(path, tmp_path / "int8.onnx", [str(broken), calibration[0]], log=said.append)
    assert any("broken.mp3" in line for line in said)
    with pytest.raises(QbsdError, match="none of the files"):
        quantise.quantise_convolutions(path, tmp_path / "none.onnx", [str(broken)], log=said.append)
    assert not (tmp_path / "none.onnx").exists()


def test_calibration_files_are_spread_over_the_corpus_manifest(tmp_path):
    entries = [{"path": f"/corpus/{i:03d}.ogg", "decodable": i % 10 != 3} for i in range(100)]
    (tmp_path / "manifest.json").write_text(json.dumps({"files": entries}))
    decodable = [entry["path"] for entry in entries if entry["decodable"]]
    chosen = quantise.corpus_calibration_paths(str(tmp_path), quantise.CalibrationSettings(files=10))
    assert len(chosen) == 10 and chosen[0] == decodable[0] and chosen[-1] == decodable[-1]
    assert all(path in decodable for path in chosen)
    positions = [decodable.index(path) for path in chosen]
    assert max(np.diff(positions)) - min(np.diff(positions)) <= 1  # evenly spaced
    assert len(quantise.corpus_calibration_paths(str(tmp_path), quantise.CalibrationSettings(files=500))) == 90
    with pytest.raises(QbsdError, match="no corpus manifest"):
        quantise.corpus_calibration_paths(str(tmp_path / "absent"), quantise.CalibrationSettings())


def test_the_command_writes_an_int8_model_calibrated_on_the_corpus(float_model, tmp_path, capsys):
    path, _float_id, calibration, _music = float_model
    manifest = tmp_path / "corpus" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"files": [{"path": p, "decodable": True} for p in calibration]}))
    target = tmp_path / "out" / "int8.onnx"
    assert quantise.main([str(path), str(target), "--corpus", str(manifest.parent), "--files", "2"]) == 0
    model_id = read_metadata(target)["qbsd.model_id"]
    assert model_id in capsys.readouterr().out
    described = json.loads(read_metadata(target)["qbsd.quantisation"])
    assert described["calibration"]["files"] == 2 and "corpus" in described["calibration"]["note"]


def test_the_shipped_fast_model_has_int8_convolutions():
    info = ModelInfo.read("fast")
    described = json.loads(info.metadata["qbsd.quantisation"])
    assert "-int8-" in info.model_id and described["operators"] == ["Conv"]
    assert "corpus" in described["calibration"]["note"]
    assert_int8_convolutions(info.path)


def test_the_network_inputs_are_what_analyse_feeds_the_graph(float_model):
    """Calibration sees what `qbsd tag` sees: the same segments (a long file's short tail
    left out) and the same patches, so the patch outputs over `network_inputs` make the
    patch half of `analyse`'s vector."""
    path, _float_id, _calibration, music = float_model
    model = TagModel(path)
    song = str(music.chord("tail.wav", seconds=61.0))  # 30 + 30 + a 1 s tail, which analyse skips
    inputs = list(model.network_inputs(song, max_segments=None))
    assert [len(patches) for patches, _ in inputs] == [10, 10]
    patch_outputs = np.concatenate([model.patch_outputs(patches) for patches, _ in inputs])
    statistics = model.statistics_outputs(np.stack([s for _, s in inputs])).astype(np.float64)
    counts = np.array([len(patches) for patches, _ in inputs], dtype=np.float64)
    weights = model.info.statistics_weights()
    expected = (1 - weights) * patch_outputs.mean(axis=0) + weights * (counts @ statistics / counts.sum())
    np.testing.assert_allclose(model.analyse(song, max_segments=None).vector, expected, atol=1e-5)


def test_the_command_refuses_to_overwrite_the_float_model(float_model, tmp_path, capsys):
    path, _float_id, calibration, _music = float_model
    copy = tmp_path / "float.onnx"
    copy.write_bytes(path.read_bytes())
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": [{"path": p, "decodable": True} for p in calibration]}))
    with pytest.raises(SystemExit):
        quantise.main([str(copy), str(tmp_path / "." / "float.onnx"), "--corpus", str(manifest)])
    assert "would replace the float model" in capsys.readouterr().err
    assert copy.read_bytes() == path.read_bytes()


def test_a_graph_with_nothing_to_quantise_is_not_passed_off_as_int8(float_model, tmp_path):
    path, _float_id, calibration, _music = float_model
    with pytest.raises(QbsdError, match="nothing was quantised"):
        quantise.quantise_convolutions(path, tmp_path / "int8.onnx", calibration, log=print, operators=("LSTM",))
    assert not (tmp_path / "int8.onnx").exists()
    assert list(tmp_path.iterdir()) == []  # no half-written file either


def test_every_operator_can_be_quantised_for_the_comparison_benchmark(float_model, tmp_path):
    """benchmarks/quantisation.py compares int8 of every operator through the same quantiser:
    more operators read int8 weights than with the convolutions alone, and the metadata says so."""
    path, _float_id, calibration, _music = float_model

    def int8_weights(target) -> int:
        graph = onnx.load(str(target)).graph
        return sum(tensor.data_type == onnx.TensorProto.INT8 for tensor in graph.initializer)

    convolutions = tmp_path / "conv.onnx"
    everything = tmp_path / "all.onnx"
    quantise.quantise_convolutions(path, convolutions, calibration, log=print)
    quantise.quantise_convolutions(path, everything, calibration, log=print, operators=None)
    assert int8_weights(everything) > int8_weights(convolutions)
    described = json.loads(read_metadata(everything)["qbsd.quantisation"])
    assert described["operators"] == ["every quantisable operator"]


def test_the_command_says_what_is_wrong_without_a_traceback(float_model, tmp_path, capsys):
    path, _float_id, _calibration, _music = float_model
    not_a_model = tmp_path / "notes.onnx"
    not_a_model.write_text("not a model")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert quantise.main([str(path), str(tmp_path / "out.onnx"), "--corpus", str(corpus)]) == 1
    assert "no corpus manifest" in capsys.readouterr().err
    (corpus / "manifest.json").write_text(json.dumps({"files": [{"path": str(path), "decodable": True}]}))
    assert quantise.main([str(not_a_model), str(tmp_path / "out.onnx"), "--corpus", str(corpus)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit):
        quantise.main([str(path), str(tmp_path), "--corpus", str(corpus)])
    assert "is a folder" in capsys.readouterr().err
    assert not (tmp_path / "out.onnx").exists()
