"""Fine-tuning the teachers' last layers (and, optionally, the top of their mid-end) on
the 4Q labels: the accurate model beyond the frozen probe.

    qbsd train --recipe musicnn-finetuned --data ../shared/data/moods4q --output models/qbsd-accurate.onnx
    qbsd evaluate --methods musicnn-heads,musicnn-finetuned,musicnn-midend-finetuned --data ../shared/data/moods4q

Each musicnn teacher ends in two dense layers: its pooled mid-end features (1506 per 3 s
patch: the max and the mean over time of 753 channels, interleaved as the graph flattens
them) -> batch norm -> 200 ReLU units -> batch norm (the penultimate layer) -> 50 tag
logits. Starting from the frozen model (`accurate.fit_heads` on clip means), those two
layers of both teachers and the 4Q heads on their 500 outputs are trained together on the
labels of the training clips: per patch the heads' sigmoid scores, per clip their mean
(as the shipped graph scores a song), a class-balanced binary cross-entropy per tag, and
an L2 pull of every weight towards where it started (`FineTuneSettings.anchor`), so 640
clips adjust the teachers rather than overwrite them. The settings (10 epochs, Adam at
1e-4, anchor 1e-3) were fixed before the first cross-validation and are not tuned on its
folds. The teacher-derived tags stay the frozen teachers' own: only the 4Q columns use
the tuned layers.

`musicnn-midend-finetuned` (issue 20, item 5) also tunes the mid-end's second and third
convolutions (64 filters of 7 frames over 64 channels each, residual): the 753 pooled
channels are the front end's 561 and the three mid-end layers' 64 each, so with the
front end and the first mid-end layer frozen, a patch's 561 + 64 pooled channels stay
as cached and the last 128 are recomputed from the first mid-end layer's output
(`midend_inputs`, (64, 187) per patch and teacher, cached per file). The pruned
teachers compute only the live filters of those layers (pruning.py); the dead ones stay
the constants they give, and only the live filters are tuned. Same settings as above.

The pooled features and the mid-end inputs come from the pruned teachers (pruning.py)
and are cached per file beside the teacher outputs (`pooled_cache`, `midend_cache`),
computed once (resumable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .teacher import OUTPUT_TEACHERS

METHOD = "musicnn-finetuned"  # = accurate.FINETUNED_RECIPE
MIDEND_METHOD = "musicnn-midend-finetuned"  # = accurate.MIDEND_RECIPE


@dataclass(frozen=True)
class FineTuneSettings:
    """How the teachers' layers are fine-tuned: `epochs` over the training clips, Adam at
    `learning_rate`, `anchor` the weight of the squared distance of the trained weights
    from their starting values, `batch_clips` clips a step, and with `midend` the
    mid-end's upper two convolutions too."""

    epochs: int = 10
    learning_rate: float = 1e-4
    anchor: float = 1e-3
    batch_clips: int = 32
    midend: bool = False


#: per method, its settings (both fixed before their first cross-validation)
METHODS = {METHOD: FineTuneSettings(), MIDEND_METHOD: FineTuneSettings(midend=True)}
#: the teachers' flattened pooled features, exposed as the output `pooled` (teacher.open_teachers)
FLATTEN = "flatten/Reshape:0"
POOLED = "pooled"
#: the first mid-end layer's output, (patches, 187, 64, 1), exposed as `midend_input`: the
#: input of the tuned mid-end convolutions and of their residual sums (the same name in both teachers)
MIDEND_INPUT = "transpose:0"
MIDEND_OUTPUT = "midend_input"
#: the tuned mid-end convolutions, by their weights' initializer names, in graph order
MIDEND_CONVS = ("conv2d_6/Conv2D/ReadVariableOp:0", "conv2d_7/Conv2D/ReadVariableOp:0")
#: pooled channels: the front end's 561, then the three mid-end layers' 64 each
FRONT_END_CHANNELS, MIDEND_CHANNELS = 561, 64
#: the teachers' two dense layers and the batch norms around them, by initializer name
BACKEND = {
    "bn9_scale": "batch_normalization_9/batchnorm/mul:0",
    "bn9_shift": "batch_normalization_9/batchnorm/sub:0",
    "dense_weights": "dense/MatMul/ReadVariableOp:0",
    "dense_bias": "dense/BiasAdd/ReadVariableOp:0",
    "bn10_scale": "batch_normalization_10/batchnorm/mul:0",
    "bn10_shift": "batch_normalization_10/batchnorm/sub:0",
    "output_weights": "dense_1/MatMul/ReadVariableOp:0",
    "output_bias": "dense_1/BiasAdd/ReadVariableOp:0",
}
#: the ones fine-tuning changes (the batch norms stay as trained)
TUNED = ("dense_weights", "dense_bias", "output_weights", "output_bias")


def pooled_cache(teacher_cache: Path) -> Path:
    """Where pooled features are cached: beside the teacher outputs' folder."""
    return Path(teacher_cache).parent / "teacher-pooled"


def midend_cache(teacher_cache: Path) -> Path:
    """Where the first mid-end layer's outputs are cached: beside the teacher outputs' folder."""
    return Path(teacher_cache).parent / "teacher-midend"


def backend_weights(teacher_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per teacher, its dense layers and batch norms (`BACKEND`) as float32 arrays."""
    import onnx
    from onnx import numpy_helper

    result = {}
    for teacher in OUTPUT_TEACHERS:
        model = onnx.load(str(Path(teacher_dir) / f"{teacher}.onnx"))
        initializers = {tensor.name: tensor for tensor in model.graph.initializer}
        result[teacher] = {
            key: numpy_helper.to_array(initializers[name]).astype(np.float32) for key, name in BACKEND.items()
        }
    return result


@dataclass(frozen=True)
class MidendLayer:
    """One pruned mid-end convolution of a teacher as the pruned graph computes it: the
    live filters' `weights` (live, 1, 7, 64) and `bias` (live,) in the graph's layout, its
    batch norm folded to `scale` and `shift` (live,), and the full 64 channels restored as
    `order` (64,) indices into [live channels, zeros] plus `constants` (64,) (the dead
    filters' constant outputs, 0 for live ones)."""

    weights: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    order: np.ndarray
    constants: np.ndarray


def midend_layers(teacher_dir: Path) -> dict[str, list[MidendLayer]]:
    """Per teacher, its `MIDEND_CONVS` as the pruned teacher (pruning.pruned_teacher) has them."""
    from onnx import numpy_helper

    from .pruning import pruned_teacher

    result = {}
    for teacher in OUTPUT_TEACHERS:
        graph = pruned_teacher(Path(teacher_dir) / f"{teacher}.onnx").graph
        initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        layers = []
        for weights_name in MIDEND_CONVS:
            conv = next(n for n in graph.node if n.op_type == "Conv" and n.input[1] == weights_name)
            relu = consumers[conv.output[0]][0]
            norm = consumers[relu.output[0]][0]
            scale, shift, mean, var = (initializers[name].astype(np.float64) for name in norm.input[1:5])
            epsilon = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
            folded = scale / np.sqrt(var + epsilon)
            prefix = f"{conv.name or conv.output[0]}/pruned"
            filters = len(initializers[conv.input[1]])
            # a layer without dead filters is not pruned: every channel its own, no constants
            order = initializers.get(f"{prefix}/order", np.arange(filters))
            constants = initializers.get(f"{prefix}/constants", np.zeros(filters))
            layers.append(
                MidendLayer(
                    weights=initializers[conv.input[1]].astype(np.float32),
                    bias=initializers[conv.input[2]].astype(np.float32),
                    scale=folded.astype(np.float32),
                    shift=(shift - mean * folded).astype(np.float32),
                    order=order.astype(np.int64),
                    constants=constants.reshape(-1).astype(np.float32),
                )
            )
        result[teacher] = layers
    return result


def pooled_features(paths: list[str], cache_dir: Path, teacher_dir: Path, log=print) -> list[np.ndarray]:
    """Per file, (n_patches, 2, 1506) float32: both teachers' pooled features for the same
    patches as the cached teacher outputs, computed and cached as those are
    (teacher.compute_outputs, one .npz per file in `cache_dir`, resumable)."""
    return _cached_outputs(paths, cache_dir, teacher_dir, POOLED, FLATTEN, "pooled teacher features", log)


def midend_inputs(paths: list[str], cache_dir: Path, teacher_dir: Path, log=print) -> list[np.ndarray]:
    """Per file, (n_patches, 2, 64, 187) float32: both teachers' first mid-end layer
    outputs (channels by frames) for the same patches as `pooled_features`, cached as those."""
    values = _cached_outputs(paths, cache_dir, teacher_dir, MIDEND_OUTPUT, MIDEND_INPUT, "mid-end inputs", log)
    for number, value in enumerate(values):  # in place: the 800 clips' inputs are 0.7 GB
        # (patches, 2, 187, 64, 1) as the graph has them -> channels first for torch's conv1d
        values[number] = np.ascontiguousarray(value[..., 0].transpose(0, 1, 3, 2))
    return values


def _cached_outputs(
    paths: list[str], cache_dir: Path, teacher_dir: Path, output: str, tensor: str, what: str, log
) -> list[np.ndarray]:
    """Per file, both teachers' inner `tensor` exposed as `output`, stacked on axis 1."""
    from ..errors import QbsdError
    from .teacher import compute_outputs, load_outputs

    cached = [load_outputs(path, str(cache_dir)) for path in paths]
    if any(value is None for value in cached):
        log(f"{what} (cached in {cache_dir}) ...")
        compute_outputs(paths, str(cache_dir), str(teacher_dir), log=log, outputs=(output,), expose={output: tensor})
        cached = [load_outputs(path, str(cache_dir)) for path in paths]
    failed = [path for path, value in zip(paths, cached) if value is None]
    if failed:
        raise QbsdError(f"no {what} for {len(failed)} files (first: {failed[0]}): they cannot be decoded")
    return [np.stack([value[f"{teacher}/{output}"] for teacher in OUTPUT_TEACHERS], axis=1) for value in cached]


@dataclass(frozen=True)
class TrainingInputs:
    """What fine-tuning reads for a list of songs: per song its `pooled` features
    (patches, 2, 1506) float32 and, to tune the mid-end, its `midend` inputs (patches, 2,
    64, 187) float32 (else None); the frozen teachers' dense layers and batch norms
    (`backend`, as `backend_weights` gives them) and mid-end `layers` (`midend_layers`,
    else None)."""

    pooled: list[np.ndarray]
    midend: list[np.ndarray] | None
    backend: dict[str, dict[str, np.ndarray]]
    layers: dict[str, list[MidendLayer]] | None

    def subset(self, indices) -> TrainingInputs:
        """The same for the songs at `indices`."""
        return TrainingInputs(
            [self.pooled[i] for i in indices],
            None if self.midend is None else [self.midend[i] for i in indices],
            self.backend,
            self.layers,
        )


def training_inputs(
    paths: list[str], with_midend: bool, teacher_cache: Path, teacher_dir: Path, log=print
) -> TrainingInputs:
    """`TrainingInputs` of `paths` (`with_midend`: with the mid-end's inputs and layers),
    computed where not cached (beside `teacher_cache`)."""
    pooled = pooled_features(paths, pooled_cache(teacher_cache), teacher_dir, log=log)
    midend = midend_inputs(paths, midend_cache(teacher_cache), teacher_dir, log=log) if with_midend else None
    layers = midend_layers(teacher_dir) if with_midend else None
    return TrainingInputs(pooled, midend, backend_weights(teacher_dir), layers)


@dataclass(frozen=True)
class FineTuned:
    """Both teachers' tuned dense layers (`TUNED` per teacher) and the 4Q heads on their
    500 outputs (`weights` (500, n_tags), `bias` (n_tags,), on raw features); with
    `midends`, per teacher its tuned mid-end convolutions (`MidendLayer`s, in
    `MIDEND_CONVS` order; only `weights` and `bias` differ from the frozen ones)."""

    backends: dict[str, dict[str, np.ndarray]]
    weights: np.ndarray
    bias: np.ndarray
    midends: dict[str, list[MidendLayer]] | None = None

    def song_scores(self, inputs: TrainingInputs) -> np.ndarray:
        """(songs, n_tags): per song of `inputs` (`training_inputs`) the mean over its
        patches of the heads' scores."""
        import torch

        if self.midends is not None and inputs.midend is None:
            raise ValueError("scoring a tuned mid-end needs the songs' mid-end inputs")
        network = _network(inputs.backend, self.backends, self.weights, self.bias, self.midends)
        with torch.no_grad():
            return np.stack(
                [
                    network(
                        torch.from_numpy(pooled),
                        None if self.midends is None else torch.from_numpy(inputs.midend[number]),
                    )
                    .mean(0)
                    .numpy()
                    for number, pooled in enumerate(inputs.pooled)
                ]
            )


def _network(frozen_backend, backends, weights, bias, midends=None):  # torch is imported only when training
    """The torch module of the tuned part: pooled features (patches, 2, 1506), and with
    `midends` the mid-end inputs (patches, 2, 64, 187) -> per-patch 4Q scores (patches,
    n_tags). `frozen_backend` gives the batch norms, `backends` the dense layers' start."""
    import torch

    class MidendConvolution(torch.nn.Module):
        """(patches, 64, 187) -> (patches, 64, 187): conv (live filters, 7 frames, same
        padding) -> ReLU -> batch norm, the 64 channels restored with the dead filters'
        constants, as the pruned graph computes them."""

        def __init__(self, layer: MidendLayer):
            super().__init__()
            # the graph's (live, 1, 7, channels) kernel is conv1d's (live, channels, 7)
            self.conv = torch.nn.Conv1d(layer.weights.shape[3], layer.weights.shape[0], 7, padding=3)
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(layer.weights[:, 0].transpose(0, 2, 1).copy()))
                self.conv.bias.copy_(torch.from_numpy(layer.bias))
            self.register_buffer("scale", torch.from_numpy(layer.scale)[None, :, None])
            self.register_buffer("shift", torch.from_numpy(layer.shift)[None, :, None])
            self.register_buffer("order", torch.from_numpy(layer.order))
            self.register_buffer("constants", torch.from_numpy(layer.constants)[None, :, None])

        def forward(self, x):
            live = torch.relu(self.conv(x)) * self.scale + self.shift
            padding = x.new_zeros(x.shape[0], len(self.order) - live.shape[1], x.shape[2])
            return torch.cat([live, padding], dim=1)[:, self.order] + self.constants

        def exported(self) -> tuple[np.ndarray, np.ndarray]:
            """The tuned weights and bias in the graph's layout."""
            weights = self.conv.weight.detach().numpy().transpose(0, 2, 1)[:, None].astype(np.float32)
            return np.ascontiguousarray(weights), self.conv.bias.detach().numpy().astype(np.float32).copy()

    class Midend(torch.nn.Module):
        """The first mid-end layer's output (patches, 64, 187) -> the pooled max and mean
        of the second and third layers' channels (patches, 256), interleaved as the graph's."""

        def __init__(self, layers: list[MidendLayer]):
            super().__init__()
            self.layers = torch.nn.ModuleList(MidendConvolution(layer) for layer in layers)

        def forward(self, first):
            second = self.layers[0](first) + first
            third = self.layers[1](second) + second
            channels = torch.cat([second, third], dim=1)
            # the graph flattens (channels, [max, mean]): max and mean alternate per channel
            return torch.stack([channels.amax(dim=2), channels.mean(dim=2)], dim=2).flatten(1)

    class Backend(torch.nn.Module):
        def __init__(self, fixed: dict, start: dict, midend: list[MidendLayer] | None):
            super().__init__()
            for key in ("bn9_scale", "bn9_shift", "bn10_scale", "bn10_shift"):
                self.register_buffer(key, torch.from_numpy(fixed[key]))
            self.dense = torch.nn.Linear(1506, 200)
            self.output = torch.nn.Linear(200, 50)
            with torch.no_grad():
                self.dense.weight.copy_(torch.from_numpy(start["dense_weights"].T.copy()))
                self.dense.bias.copy_(torch.from_numpy(start["dense_bias"]))
                self.output.weight.copy_(torch.from_numpy(start["output_weights"].T.copy()))
                self.output.bias.copy_(torch.from_numpy(start["output_bias"]))
            self.midend = None if midend is None else Midend(midend)

        def forward(self, pooled, first_midend=None):
            if self.midend is not None:
                kept = 2 * (FRONT_END_CHANNELS + MIDEND_CHANNELS)
                pooled = torch.cat([pooled[:, :kept], self.midend(first_midend)], dim=1)
            penultimate = torch.relu(self.dense(pooled * self.bn9_scale + self.bn9_shift))
            penultimate = penultimate * self.bn10_scale + self.bn10_shift
            return penultimate, torch.sigmoid(self.output(penultimate))

    class Network(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.teachers = torch.nn.ModuleList(
                Backend(frozen_backend[t], backends[t], None if midends is None else midends[t])
                for t in OUTPUT_TEACHERS
            )
            self.heads = torch.nn.Linear(weights.shape[0], weights.shape[1])
            with torch.no_grad():
                self.heads.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T, dtype=np.float32)))
                self.heads.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

        def forward(self, pooled, midend=None):
            outputs = [
                teacher(pooled[:, number], None if midend is None else midend[:, number])
                for number, teacher in enumerate(self.teachers)
            ]
            # the order of accurate.patch_features: both penultimates, then both probabilities
            features = torch.cat([outputs[0][0], outputs[1][0], outputs[0][1], outputs[1][1]], dim=1)
            return torch.sigmoid(self.heads(features))

    return Network()


def fine_tune(
    inputs: TrainingInputs,
    labels: np.ndarray,
    heads,
    settings: FineTuneSettings = FineTuneSettings(),
    seed: int = 0,
    log=None,
) -> FineTuned:
    """Train both teachers' dense layers and the 4Q heads (starting from the frozen
    `heads`, accurate.Heads) on the songs' `inputs` (`training_inputs`) and labels
    (songs, n_tags); with `settings.midend` also the mid-end's upper convolutions.
    Deterministic for a seed and a torch thread count (the seed orders the clips; every
    weight starts from the frozen model)."""
    import torch

    if settings.midend and (inputs.midend is None or inputs.layers is None):
        raise ValueError("fine-tuning the mid-end needs its inputs and its layers")
    songs_pooled, songs_midend, frozen_backend, midend_start = (
        inputs.pooled,
        inputs.midend,
        inputs.backend,
        inputs.layers,
    )
    torch.manual_seed(seed)
    weights, bias = heads.folded()
    backends = {t: {key: frozen_backend[t][key] for key in TUNED} for t in OUTPUT_TEACHERS}
    network = _network(frozen_backend, backends, weights, bias, midend_start if settings.midend else None)
    start = [parameter.detach().clone() for parameter in network.parameters()]
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    targets = torch.from_numpy(labels.astype(np.float32))
    frequency = labels.mean(axis=0).clip(1e-3, 1 - 1e-3)
    # class-balanced, as the frozen heads' class_weight="balanced"
    positive = torch.from_numpy((0.5 / frequency).astype(np.float32))
    negative = torch.from_numpy((0.5 / (1 - frequency)).astype(np.float32))
    rng = np.random.default_rng(seed)
    for epoch in range(settings.epochs):
        total = 0.0
        order = rng.permutation(len(songs_pooled))
        for first in range(0, len(order), settings.batch_clips):
            batch = order[first : first + settings.batch_clips]
            counts = [len(songs_pooled[i]) for i in batch]
            # every patch of the batch's clips in one pass, then each clip's mean
            pooled = torch.from_numpy(np.concatenate([songs_pooled[i] for i in batch]))
            first_midend = (
                torch.from_numpy(np.concatenate([songs_midend[i] for i in batch])) if settings.midend else None
            )
            patch_scores = network(pooled, first_midend)
            scores = torch.stack([part.mean(0) for part in patch_scores.split(counts)]).clamp(1e-6, 1 - 1e-6)
            y = targets[batch]
            loss = -(positive * y * torch.log(scores) + negative * (1 - y) * torch.log(1 - scores)).mean()
            loss = loss + settings.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(network.parameters(), start))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        if log:
            log(f"  fine-tuning epoch {epoch + 1}/{settings.epochs}: loss {total / len(order):.4f}")
    tuned, tuned_midends = {}, None
    for teacher, module in zip(OUTPUT_TEACHERS, network.teachers):
        tuned[teacher] = {
            "dense_weights": module.dense.weight.detach().numpy().T.copy(),
            "dense_bias": module.dense.bias.detach().numpy().copy(),
            "output_weights": module.output.weight.detach().numpy().T.copy(),
            "output_bias": module.output.bias.detach().numpy().copy(),
        }
    if settings.midend:
        from dataclasses import replace

        tuned_midends = {}
        for teacher, module in zip(OUTPUT_TEACHERS, network.teachers):
            tuned_midends[teacher] = [
                replace(layer, weights=convolution.exported()[0], bias=convolution.exported()[1])
                for layer, convolution in zip(midend_start[teacher], module.midend.layers, strict=True)
            ]
    return FineTuned(
        tuned,
        network.heads.weight.detach().numpy().T.astype(np.float32).copy(),
        network.heads.bias.detach().numpy().astype(np.float32).copy(),
        tuned_midends,
    )
