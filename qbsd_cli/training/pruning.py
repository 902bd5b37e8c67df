"""Remove the musicnn teachers' dead filters from their ONNX graphs, keeping every output.

Weight decay left many of musicnn's first-layer filters with almost no weight: at 1e-3
of their layer's largest filter norm, 181 of the 204 filters of MSD_musicnn's 7x38
timbral convolution and 190 of its 7x67 one (MTT_musicnn: 126 and 135). Such a filter's
output is nearly its bias at every time and frequency, so after the ReLU, the batch norm
and the max over frequency its channel is nearly one constant. The convolutions are most
of a teacher's cost, so computing only the live filters and putting the constants back as
channels makes the teachers 2.1 (MTT) and 4.3 (MSD) times faster, the accurate model 2.6
times, with outputs moved by float rounding (benchmarks/PRUNING.md, models/README.md).

A front-end branch of musicnn is Conv -> Relu -> BatchNormalization -> MaxPool (over all
frequencies) -> Squeeze to (batch, channels, time). `prune_dead_filters` slices the Conv
and the batch norm to the live filters, and after the Squeeze restores the full channel
order: Pad appends zero channels for the dead filters, Gather puts every channel back in
its place, Add sets the dead ones to their constants. Pad, Gather and an addition of zero
leave the live channels bit for bit as they were, so downstream layers see what they saw.
Weight decay drove those weights towards zero without reaching it (MSD's norms are 1e-30
to 1e-7 of the largest; MTT's fall in a continuum, pruned up to 9e-4, kept from 1e-3), so
"dead" means a weight norm at most `NEAR_ZERO` times the layer's largest: an
approximation, measured (on real patches probabilities move by at most 2e-7; on extreme
test inputs the penultimate layer by 2e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Filters whose weight norm is at most this fraction of their layer's largest are dropped:
#: on the teachers' real patches no probability moves by more than 2e-7 and no penultimate
#: value by more than 1e-6 (tests/test_teacher_pruning.py checks 1e-5 on the saved
#: reference patches), while 1e-2 moves probabilities by up to 2e-5 for 10% more speed.
NEAR_ZERO = 1e-3


@dataclass(frozen=True)
class PrunedLayer:
    """One pruned convolution: its name, filters kept, filters in all."""

    conv: str
    kept: int
    filters: int


def _batch_norm_constant(
    value: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float
) -> np.ndarray:
    """ONNX BatchNormalization (inference) of one value per channel, in float32 as onnxruntime."""
    value = value.astype(np.float32)
    return ((value - mean) / np.sqrt(var + np.float32(epsilon)) * scale + bias).astype(np.float32)


def prune_dead_filters(model, near_zero: float = 0.0) -> tuple[object, list[PrunedLayer]]:
    """A copy of the ONNX `model` whose single-input-channel convolutions compute only
    their live filters, and the layers pruned. A filter is dead when the norm of its
    weights is at most `near_zero` times the largest filter norm of its layer (0: exactly
    zero, which keeps the outputs); its channel is replaced by the constant it gives with
    zero weights. A convolution (one input channel, no groups) is pruned only where it is
    followed by Relu -> BatchNormalization, then optionally MaxPool and Squeeze (not of the
    channel axis), each the only consumer of the one before (no graph output among them)
    and with weights used nowhere else; the channels are restored after the last of
    those."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for value in graph.output:  # a graph output inside a chain must keep its channels
        consumers.setdefault(value.name, []).append(None)

    def only_consumer(node, op_type: str):
        nodes = consumers.get(node.output[0], [])
        return nodes[0] if len(nodes) == 1 and nodes[0] is not None and nodes[0].op_type == op_type else None

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(initializers[name])

    def replace_initializer(name: str, value: np.ndarray) -> None:
        initializers[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def restored_after(norm) -> tuple[object, int] | None:
        """The last node of the channel-wise chain after `norm`, and its output's rank."""
        last, rank = norm, 4
        while True:
            pool = only_consumer(last, "MaxPool")
            # padding cannot change a constant channel's maximum, but an Indices output
            # would have the pruned channel count
            if pool is not None and len(pool.output) == 1:
                last = pool
                continue
            squeeze = only_consumer(last, "Squeeze")
            if squeeze is not None and len(squeeze.input) == 2 and squeeze.input[1] in initializers:
                axes = [int(axis) % rank for axis in array(squeeze.input[1])]
                if 0 not in axes and 1 not in axes:
                    last, rank = squeeze, rank - len(axes)
                    continue
            return last, rank

    pruned, restorations = [], {}
    for conv in list(graph.node):
        if conv.op_type != "Conv" or len(conv.input) != 3 or conv.input[1] not in initializers:
            continue
        weights = array(conv.input[1])
        relu = only_consumer(conv, "Relu")
        norm = relu and only_consumer(relu, "BatchNormalization")
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if weights.ndim != 4 or weights.shape[1] != 1 or groups != 1 or norm is None:
            continue
        parameters = (*conv.input[1:3], *norm.input[1:5])
        if any(name not in initializers or len(consumers[name]) != 1 for name in parameters):
            continue
        norms = np.sqrt((weights.reshape(len(weights), -1).astype(np.float64) ** 2).sum(axis=1))
        dead = norms <= near_zero * norms.max()
        if not dead.any() or dead.all():
            continue
        bias = array(conv.input[2])
        scale, shift, mean, var = (array(name) for name in norm.input[1:5])
        epsilon = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        constants = _batch_norm_constant(np.maximum(bias, 0), scale, shift, mean, var, epsilon)
        live = ~dead
        replace_initializer(conv.input[1], weights[live])
        for name, value in zip(parameters[1:], (bias, scale, shift, mean, var)):
            replace_initializer(name, value[live])
        last, rank = restored_after(norm)
        prefix = f"{conv.name or conv.output[0]}/pruned"
        kept, dropped = int(live.sum()), int(dead.sum())
        # live channels first, then zeros for the dead ones; `order` maps each original
        # channel to its place in that tensor
        order = np.empty(len(weights), dtype=np.int64)
        order[live] = np.arange(kept)
        order[dead] = kept + np.arange(dropped)
        pads = np.zeros(2 * rank, dtype=np.int64)
        pads[rank + 1] = dropped
        filler = np.where(dead, constants, 0).astype(np.float32).reshape((-1,) + (1,) * (rank - 2))
        graph.initializer.extend(
            [
                numpy_helper.from_array(pads, f"{prefix}/pads"),
                numpy_helper.from_array(order, f"{prefix}/order"),
                numpy_helper.from_array(filler, f"{prefix}/constants"),
            ]
        )
        output, computed = last.output[0], f"{prefix}/live"
        restorations[output] = (
            computed,
            [
                helper.make_node("Pad", [computed, f"{prefix}/pads"], [f"{prefix}/padded"], mode="constant"),
                helper.make_node("Gather", [f"{prefix}/padded", f"{prefix}/order"], [f"{prefix}/gathered"], axis=1),
                helper.make_node("Add", [f"{prefix}/gathered", f"{prefix}/constants"], [output]),
            ],
        )
        pruned.append(PrunedLayer(conv.name or conv.output[0], kept, len(weights)))
    ordered = []
    for node in graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        ordered.append(node)
        if node.output and node.output[0] in restorations:
            computed, restoring = restorations[node.output[0]]
            node.output[0] = computed
            ordered.extend(restoring)
    del graph.node[:]
    graph.node.extend(ordered)
    # the graph's value_info may record the old channel counts
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model, pruned


def pruned_teacher(path: str | Path, near_zero: float = NEAR_ZERO):
    """The teacher ONNX file at `path`, loaded and pruned (`prune_dead_filters`)."""
    import onnx

    return prune_dead_filters(onnx.load(str(path)), near_zero)[0]
