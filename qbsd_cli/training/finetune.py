"""Fine-tuning the teachers' last layers on the 4Q labels: the accurate model beyond the
frozen probe.

    qbsd train --recipe musicnn-finetuned --data ../shared/data/moods4q --output models/qbsd-accurate.onnx
    qbsd evaluate --methods musicnn-heads,musicnn-finetuned --data ../shared/data/moods4q

Each musicnn teacher ends in two dense layers: its pooled mid-end features (1506 per 3 s
patch: the max and the mean over time of 753 channels, interleaved as the graph flattens
them) -> batch norm -> 200 ReLU units -> batch norm (the penultimate layer) -> 50 tag
logits. Starting from the frozen model (`accurate.fit_heads` on clip means), those two
layers of both teachers and the 4Q heads on their 500 outputs are trained together on the
labels of the training clips: per patch the heads' sigmoid scores, per clip their mean
(as the shipped graph scores a song), a class-balanced binary cross-entropy per tag, and
an L2 pull of every weight towards where it started (`ANCHOR`), so 640 clips adjust the
teachers rather than overwrite them. The settings (10 epochs, Adam at 1e-4, anchor 1e-3)
were fixed before the first cross-validation and are not tuned on its folds. The
teacher-derived tags stay the frozen teachers' own: only the 4Q columns use the tuned
layers.

The pooled features come from the pruned teachers (pruning.py) and are cached per file
beside the teacher outputs (`pooled_cache`), computed once (resumable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .teacher import OUTPUT_TEACHERS

METHOD = "musicnn-finetuned"  # = accurate.FINETUNED_RECIPE
EPOCHS = 10
LEARNING_RATE = 1e-4
#: weight of the squared distance of the trained weights from their starting values
ANCHOR = 1e-3
BATCH_CLIPS = 32
#: the teachers' flattened pooled features, exposed as the output `pooled` (teacher.open_teachers)
FLATTEN = "flatten/Reshape:0"
POOLED = "pooled"
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


def pooled_features(paths: list[str], cache_dir: Path, teacher_dir: Path, log=print) -> list[np.ndarray]:
    """Per file, (n_patches, 2, 1506) float32: both teachers' pooled features for the same
    patches as the cached teacher outputs, computed and cached as those are
    (teacher.compute_outputs, one .npz per file in `cache_dir`, resumable)."""
    from ..errors import QbsdError
    from .teacher import compute_outputs, load_outputs

    cached = [load_outputs(path, str(cache_dir)) for path in paths]
    if any(value is None for value in cached):
        log(f"pooled teacher features (cached in {cache_dir}) ...")
        compute_outputs(paths, str(cache_dir), str(teacher_dir), log=log, outputs=(POOLED,), expose={POOLED: FLATTEN})
        cached = [load_outputs(path, str(cache_dir)) for path in paths]
    failed = [path for path, value in zip(paths, cached) if value is None]
    if failed:
        raise QbsdError(
            f"no pooled teacher features for {len(failed)} files (first: {failed[0]}): they cannot be decoded"
        )
    return [np.stack([value[f"{teacher}/{POOLED}"] for teacher in OUTPUT_TEACHERS], axis=1) for value in cached]


@dataclass(frozen=True)
class FineTuned:
    """Both teachers' tuned dense layers (`TUNED` per teacher) and the 4Q heads on their
    500 outputs (`weights` (500, n_tags), `bias` (n_tags,), on raw features)."""

    backends: dict[str, dict[str, np.ndarray]]
    weights: np.ndarray
    bias: np.ndarray

    def song_scores(self, constants: dict, songs_pooled: list[np.ndarray]) -> np.ndarray:
        """(songs, n_tags): per song the mean over its patches of the heads' scores;
        `constants` is `backend_weights` (for the batch norms)."""
        network = _network(constants, self.backends, self.weights, self.bias)
        import torch

        with torch.no_grad():
            return np.stack([network(torch.from_numpy(pooled)).mean(0).numpy() for pooled in songs_pooled])


def _network(constants, backends, weights, bias):  # torch is imported only when training
    """The torch module of the tuned part: pooled features (patches, 2, 1506) -> per-patch
    4Q scores (patches, n_tags)."""
    import torch

    class Backend(torch.nn.Module):
        def __init__(self, fixed: dict, start: dict):
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

        def forward(self, pooled):
            penultimate = torch.relu(self.dense(pooled * self.bn9_scale + self.bn9_shift))
            penultimate = penultimate * self.bn10_scale + self.bn10_shift
            return penultimate, torch.sigmoid(self.output(penultimate))

    class Network(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.teachers = torch.nn.ModuleList(Backend(constants[t], backends[t]) for t in OUTPUT_TEACHERS)
            self.heads = torch.nn.Linear(weights.shape[0], weights.shape[1])
            with torch.no_grad():
                self.heads.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T, dtype=np.float32)))
                self.heads.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

        def forward(self, pooled):
            outputs = [teacher(pooled[:, number]) for number, teacher in enumerate(self.teachers)]
            # the order of accurate.patch_features: both penultimates, then both probabilities
            features = torch.cat([outputs[0][0], outputs[1][0], outputs[0][1], outputs[1][1]], dim=1)
            return torch.sigmoid(self.heads(features))

    return Network()


def fine_tune(
    songs_pooled: list[np.ndarray],
    labels: np.ndarray,
    heads,
    constants: dict,
    epochs: int = EPOCHS,
    seed: int = 0,
    log=None,
) -> FineTuned:
    """Train both teachers' dense layers and the 4Q heads (starting from the frozen
    `heads`, accurate.Heads) on the songs' pooled features ((patches, 2, 1506) each) and
    labels (songs, n_tags). Deterministic for a seed and a torch thread count (the seed
    orders the clips; every weight starts from the frozen model)."""
    import torch

    torch.manual_seed(seed)
    weights, bias = heads.folded()
    backends = {t: {key: constants[t][key] for key in TUNED} for t in OUTPUT_TEACHERS}
    network = _network(constants, backends, weights, bias)
    start = [parameter.detach().clone() for parameter in network.parameters()]
    optimiser = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    targets = torch.from_numpy(labels.astype(np.float32))
    frequency = labels.mean(axis=0).clip(1e-3, 1 - 1e-3)
    # class-balanced, as the frozen heads' class_weight="balanced"
    positive = torch.from_numpy((0.5 / frequency).astype(np.float32))
    negative = torch.from_numpy((0.5 / (1 - frequency)).astype(np.float32))
    inputs = [torch.from_numpy(pooled) for pooled in songs_pooled]
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        order = rng.permutation(len(inputs))
        for first in range(0, len(order), BATCH_CLIPS):
            batch = order[first : first + BATCH_CLIPS]
            scores = torch.stack([network(inputs[i]).mean(0) for i in batch]).clamp(1e-6, 1 - 1e-6)
            y = targets[batch]
            loss = -(positive * y * torch.log(scores) + negative * (1 - y) * torch.log(1 - scores)).mean()
            loss = loss + ANCHOR * sum(((p - p0) ** 2).sum() for p, p0 in zip(network.parameters(), start))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        if log:
            log(f"  fine-tuning epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}")
    tuned = {}
    for teacher, module in zip(OUTPUT_TEACHERS, network.teachers):
        tuned[teacher] = {
            "dense_weights": module.dense.weight.detach().numpy().T.copy(),
            "dense_bias": module.dense.bias.detach().numpy().copy(),
            "output_weights": module.output.weight.detach().numpy().T.copy(),
            "output_bias": module.output.bias.detach().numpy().copy(),
        }
    return FineTuned(
        tuned,
        network.heads.weight.detach().numpy().T.astype(np.float32).copy(),
        network.heads.bias.detach().numpy().astype(np.float32).copy(),
    )
