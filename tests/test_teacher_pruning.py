"""Pruning the teachers' dead filters (qbsd_cli.training.pruning) keeps their outputs.

Two checks: a small generated graph of musicnn's branch shape, where dead filters are
exactly zero and the pruned graph must give the very same numbers; and the committed
teachers themselves, on the reference patches of models/teacher/reference.npz, where the
pruned graphs must reproduce TensorFlow's outputs within the conversion test's tolerance
and the unpruned ONNX graphs within 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qbsd_cli.training.pruning import NEAR_ZERO, prune_dead_filters  # noqa: E402

TEACHER_DIR = Path(__file__).resolve().parent.parent / "models" / "teacher"


def _run(model, feeds: dict, outputs: list[str]) -> list[np.ndarray]:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def _branch_model(weights: np.ndarray, bias: np.ndarray) -> object:
    """input (batch, 1, 20, 8) -> Conv (time padded) -> Relu -> BatchNormalization ->
    MaxPool over all frequencies -> Squeeze -> (batch, filters, 20) 'features', then a
    consumer of every channel ('mixed', a MatMul over channels)."""
    filters, _, kernel_time, kernel_frequency = weights.shape
    width = 8 - kernel_frequency + 1
    rng = np.random.default_rng(1)
    initializers = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array((rng.uniform(0.5, 2, filters) * rng.choice([-1, 1], filters)).astype(np.float32), "s"),
        numpy_helper.from_array(rng.normal(size=filters).astype(np.float32), "t"),
        numpy_helper.from_array(rng.normal(size=filters).astype(np.float32), "m"),
        numpy_helper.from_array(rng.uniform(0.1, 3, filters).astype(np.float32), "v"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "axes"),
        numpy_helper.from_array(rng.normal(size=(20, 20)).astype(np.float32), "mix"),
    ]
    pad = kernel_time // 2
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["conv"], kernel_shape=[kernel_time, kernel_frequency], pads=[pad, 0, pad, 0]
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("BatchNormalization", ["relu", "s", "t", "m", "v"], ["norm"], epsilon=1e-3),
        helper.make_node("MaxPool", ["norm"], ["pool"], kernel_shape=[1, width], strides=[1, width]),
        helper.make_node("Squeeze", ["pool", "axes"], ["features"]),
        helper.make_node("MatMul", ["features", "mix"], ["mixed"]),
    ]
    graph = helper.make_graph(
        nodes,
        "branch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 20, 8])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", weights.shape[0], 20]),
            helper.make_tensor_value_info("mixed", TensorProto.FLOAT, ["batch", weights.shape[0], 20]),
        ],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_zero_filters_are_removed_and_their_constant_channels_restored():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 1, 3, 4)).astype(np.float32)
    weights[[1, 4]] = 0
    bias = np.array([0.3, 0.7, -0.2, 0.1, -0.5, 0.4], dtype=np.float32)  # dead: one positive, one negative bias
    model = _branch_model(weights, bias)
    pruned, layers = prune_dead_filters(model)
    assert [(layer.kept, layer.filters) for layer in layers] == [(4, 6)]
    kept = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}["w"]
    assert kept.shape == (4, 1, 3, 4)
    x = rng.normal(size=(3, 1, 20, 8)).astype(np.float32)
    before = _run(model, {"x": x}, ["features", "mixed"])
    after = _run(pruned, {"x": x}, ["features", "mixed"])
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1], rtol=1e-6, atol=1e-6)
    # a dead channel is one constant over time
    assert np.ptp(after[0][:, [1, 4]], axis=2).max() == 0


def test_a_layer_with_no_dead_filter_is_left_alone():
    weights = np.random.default_rng(2).normal(size=(5, 1, 3, 4)).astype(np.float32)
    model = _branch_model(weights, np.zeros(5, dtype=np.float32))
    pruned, layers = prune_dead_filters(model)
    assert layers == []
    assert [n.op_type for n in pruned.graph.node] == [n.op_type for n in model.graph.node]


@pytest.fixture(scope="module")
def reference():
    with np.load(TEACHER_DIR / "reference.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("name", ["MTT_musicnn", "MSD_musicnn"])
def test_pruned_teachers_keep_their_outputs(name, reference):
    model = onnx.load(str(TEACHER_DIR / f"{name}.onnx"))
    pruned, layers = prune_dead_filters(model, NEAR_ZERO)
    # most of the cost is in the first layers: the pruned teachers keep under half their filters
    assert sum(layer.kept for layer in layers) < 0.6 * sum(layer.filters for layer in layers)
    batch = {"melspec": reference["input"].astype(np.float32)}
    names = ["probabilities", "penultimate", "logits"]
    unpruned = _run(model, batch, names)
    for output, before, after in zip(names, unpruned, _run(pruned, batch, names)):
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-5, err_msg=output)
        np.testing.assert_allclose(after, reference[f"{name}/{output}"], rtol=1e-4, atol=1e-4, err_msg=output)
