"""The accurate model: the two musicnn teachers, frozen, with heads on the 4Q labels, and
their own tags renamed into qbsd's categories, in one self-describing ONNX graph.

    qbsd train --recipe musicnn-finetuned --data ../shared/data/moods4q --output models/qbsd-accurate.onnx
    qbsd evaluate --methods teacher-probe,musicnn-heads,musicnn-finetuned --data ../shared/data/moods4q

Per 3 s log-mel patch (frontends.LogMelFrontEnd), the graph runs MTT_musicnn and
MSD_musicnn (models/teacher/) and concatenates their penultimate layers and tag
probabilities into 500 features (200 + 200 + 50 + 50). On them, one logistic regression
per 4Q tag (`Heads`: standardised features, C=0.01, balanced classes, fitted on each
clip's mean features) gives the 4Q columns; the teachers' 100 tags, synonyms merged
(`TEACHER_TAGS`), give the columns of instruments, voices, styles, eras and descriptors.
The song vector is the mean of the per-patch outputs, as for every qbsd model. The shipped
recipe, `musicnn-finetuned`, then fine-tunes both teachers' last layers with the heads
(finetune.py); their tuned copies feed the 4Q heads, the frozen ones the teacher tags.

Teacher outputs of the training clips are computed once with onnxruntime and cached
(teacher.compute_outputs, ~/.cache/qbsd/teacher-outputs); nothing here needs TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..frontends import MUSICNN_LOGMEL
from ..model import DUPLICATE_COSINE_KEY
from ..settings import DEFAULT_DUPLICATE_COSINE
from .teacher import FRONT_END, OUTPUT_TEACHERS, compute_outputs, load_outputs

#: Where the teacher ONNX files are, in a checkout (they are a training-side input).
TEACHER_DIR = Path(__file__).resolve().parent.parent.parent / "models" / "teacher"
#: Cached teacher outputs: $XDG_CACHE_HOME/qbsd/teacher-outputs (~/.cache/qbsd/...).
TEACHER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qbsd" / "teacher-outputs"


def teacher_cache(cache: str | os.PathLike | None) -> Path:
    """Where teacher outputs are cached: `cache`/teacher-outputs for a command's --cache,
    else TEACHER_CACHE."""
    return Path(cache) / "teacher-outputs" if cache else TEACHER_CACHE


#: Regularisation of the heads: the frozen-teacher probe's setting (issue 10), confirmed on
#: the folds of `qbsd evaluate` against 0.003 and 0.03 (models/README.md).
HEAD_C = 0.01
RECIPE = "musicnn-heads"
#: the accurate model with the teachers' last layers fine-tuned on the labels (finetune.py)
FINETUNED_RECIPE = "musicnn-finetuned"
#: the same with the top of the teachers' mid-end fine-tuned too (finetune.py)
MIDEND_RECIPE = "musicnn-midend-finetuned"
#: the recipes that fine-tune (finetune.METHODS holds their settings)
FINETUNING_RECIPES = (FINETUNED_RECIPE, MIDEND_RECIPE)

#: qbsd's name for each teacher-derived tag -> the teacher tags it merges ("MTT:x", "MSD:y"),
#: whose probabilities are averaged. Synonyms are merged (MTT's `female`, `woman`,
#: `female vocal`, `female voice` and MSD's `female vocalists` are one voice:female).
TEACHER_TAGS: dict[str, tuple[str, ...]] = {
    "voice:female": (
        "MTT:female",
        "MTT:woman",
        "MTT:female vocal",
        "MTT:female voice",
        "MSD:female vocalists",
        "MSD:female vocalist",
    ),
    "voice:male": ("MTT:male", "MTT:man", "MTT:male vocal", "MTT:male voice", "MSD:male vocalists"),
    "voice:none": ("MTT:no vocals", "MTT:no vocal", "MTT:no voice", "MSD:instrumental"),
    "voice:vocal": ("MTT:vocal", "MTT:vocals", "MTT:voice", "MTT:singing"),
    "voice:choir": ("MTT:choir", "MTT:choral"),
    "voice:opera": ("MTT:opera",),
    "instrument:guitar": ("MTT:guitar", "MSD:guitar"),
    "instrument:strings": ("MTT:strings",),
    "instrument:drums": ("MTT:drums",),
    "instrument:piano": ("MTT:piano",),
    "instrument:violin": ("MTT:violin",),
    "instrument:cello": ("MTT:cello",),
    "instrument:harp": ("MTT:harp",),
    "instrument:harpsichord": ("MTT:harpsichord",),
    "instrument:flute": ("MTT:flute",),
    "instrument:sitar": ("MTT:sitar",),
    "instrument:synth": ("MTT:synth",),
    "style:classical": ("MTT:classical", "MTT:classic"),
    "style:rock": ("MTT:rock", "MSD:rock"),
    "style:pop": ("MTT:pop", "MSD:pop"),
    "style:electronic": ("MTT:electronic", "MSD:electronic", "MSD:electronica"),
    "style:electro": ("MSD:electro",),
    "style:techno": ("MTT:techno",),
    "style:house": ("MSD:House",),
    "style:dance": ("MTT:dance", "MSD:dance"),
    "style:ambient": ("MTT:ambient", "MSD:ambient"),
    "style:chillout": ("MSD:chillout", "MSD:chill"),
    "style:new age": ("MTT:new age",),
    "style:indian": ("MTT:indian",),
    "style:country": ("MTT:country", "MSD:country"),
    "style:metal": ("MTT:metal", "MSD:metal"),
    "style:heavy metal": ("MSD:heavy metal",),
    "style:hard rock": ("MSD:hard rock",),
    "style:classic rock": ("MSD:classic rock",),
    "style:progressive rock": ("MSD:Progressive rock",),
    "style:alternative": ("MSD:alternative",),
    "style:alternative rock": ("MSD:alternative rock",),
    "style:indie": ("MSD:indie",),
    "style:indie rock": ("MSD:indie rock",),
    "style:indie pop": ("MSD:indie pop",),
    "style:punk": ("MSD:punk",),
    "style:jazz": ("MSD:jazz",),
    "style:blues": ("MSD:blues",),
    "style:soul": ("MSD:soul",),
    "style:funk": ("MSD:funk",),
    "style:rnb": ("MSD:rnb",),
    "style:hip-hop": ("MSD:Hip-Hop",),
    "style:folk": ("MSD:folk",),
    "style:acoustic": ("MSD:acoustic",),
    "style:experimental": ("MSD:experimental",),
    "style:easy listening": ("MSD:easy listening",),
    "style:oldies": ("MSD:oldies",),
    "era:60s": ("MSD:60s",),
    "era:70s": ("MSD:70s",),
    "era:80s": ("MSD:80s",),
    "era:90s": ("MSD:90s",),
    "era:00s": ("MSD:00s",),
    "descriptor:slow": ("MTT:slow",),
    "descriptor:fast": ("MTT:fast",),
    "descriptor:loud": ("MTT:loud",),
    "descriptor:quiet": ("MTT:quiet",),
    "descriptor:soft": ("MTT:soft",),
    "descriptor:solo": ("MTT:solo",),
    "descriptor:weird": ("MTT:weird",),
    "descriptor:beats": ("MTT:beat", "MTT:beats"),
    "descriptor:beautiful": ("MSD:beautiful",),
    "descriptor:mellow": ("MSD:Mellow",),
    "descriptor:party": ("MSD:party",),
    "descriptor:sexy": ("MSD:sexy",),
    "descriptor:catchy": ("MSD:catchy",),
    "descriptor:sad": ("MSD:sad",),
    "descriptor:happy": ("MSD:happy",),
}

#: Teacher-derived tags with a 4Q label of the same meaning: their real-label AROC is
#: measured on the 800 clips (`teacher_tag_report`).
REAL_LABEL_MATCHES = {
    "style:classical": "genre:classical",
    "style:country": "genre:country",
    "style:electronic": "genre:electronic",
    "style:folk": "genre:folk",
    "style:jazz": "genre:jazz",
    "style:blues": "genre:blues",
    "style:new age": "genre:new age",
    "style:easy listening": "genre:easy listening",
    "style:hip-hop": "genre:rap",
    "style:rnb": "genre:r&b",
    "style:rock": "genre:pop/rock",
    "descriptor:happy": "mood:happy",
    "descriptor:sad": "mood:sad",
    "descriptor:mellow": "mood:mellow",
    "descriptor:quiet": "mood:quiet",
    "descriptor:soft": "mood:soft",
    "descriptor:sexy": "mood:sexy",
}

_PREFIXES = {"MTT_musicnn": "MTT", "MSD_musicnn": "MSD"}


def teacher_tag_names(teacher_dir: Path = TEACHER_DIR) -> list[str]:
    """The teachers' 100 tags as "MTT:x" / "MSD:y", in the order of `patch_features`' last 100."""
    import onnxruntime

    names = []
    for teacher in OUTPUT_TEACHERS:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(
            str(teacher_dir / f"{teacher}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        tags = json.loads(session.get_modelmeta().custom_metadata_map["tags"])
        names += [f"{_PREFIXES[teacher]}:{tag}" for tag in tags]
    return names


def teacher_tag_matrix(teacher_names: list[str]) -> np.ndarray:
    """(100, len(TEACHER_TAGS)) float32: column j averages the teacher tags of the j-th
    entry of TEACHER_TAGS. Raises KeyError for a teacher tag that does not exist."""
    matrix = np.zeros((len(teacher_names), len(TEACHER_TAGS)), dtype=np.float32)
    for column, sources in enumerate(TEACHER_TAGS.values()):
        for source in sources:
            matrix[teacher_names.index(source), column] = 1.0 / len(sources)
    return matrix


def patch_features(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """(n_patches, 500) float32 from a file's cached teacher outputs: the penultimate layers
    of MTT and MSD musicnn (200 + 200), then their tag probabilities (50 + 50)."""
    return np.concatenate(
        [outputs[f"{name}/{key}"] for key in ("penultimate", "probabilities") for name in OUTPUT_TEACHERS], axis=1
    ).astype(np.float32)


@dataclass(frozen=True)
class Heads:
    """One logistic regression per tag on standardised teacher features:
    p = sigmoid(((x - mean) / scale) @ weights + bias), x of shape (n, 500)."""

    mean: np.ndarray  # (500,)
    scale: np.ndarray  # (500,)
    weights: np.ndarray  # (500, n_tags)
    bias: np.ndarray  # (n_tags,)

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, bias) on the raw features: the standardisation folded in, as the graph
        applies it."""
        weights = self.weights / self.scale[:, None]
        return weights.astype(np.float32), (self.bias - self.mean / self.scale @ self.weights).astype(np.float32)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, n_tags) float64 for features (n, 500)."""
        logits = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


def fit_heads(clip_features: np.ndarray, labels: np.ndarray, C: float = HEAD_C) -> Heads:
    """Heads fitted on each clip's mean features (clips, 500) and its labels (clips, n_tags).
    A tag with no positive (or no negative) clip gets a constant at its frequency."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(clip_features)
    x = scaler.transform(clip_features)
    weights = np.zeros((x.shape[1], labels.shape[1]))
    bias = np.zeros(labels.shape[1])
    for tag in range(labels.shape[1]):
        y = labels[:, tag]
        if y.min() == y.max():
            prior = np.clip(y.mean(), 1e-4, 1 - 1e-4)
            bias[tag] = np.log(prior / (1 - prior))
            continue
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x, y)
        weights[:, tag], bias[tag] = model.coef_[0], model.intercept_[0]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return Heads(scaler.mean_.astype(np.float64), scale.astype(np.float64), weights, bias)


def song_scores(heads: Heads, songs_patch_features: list[np.ndarray]) -> np.ndarray:
    """(songs, n_tags): per song, the mean over its patches of the heads' probabilities,
    the song vector the shipped graph computes."""
    return np.stack([heads.probabilities(features).mean(axis=0) for features in songs_patch_features])


def teacher_outputs(
    paths: list[str], cache_dir: Path = TEACHER_CACHE, teacher_dir: Path = TEACHER_DIR, log=print
) -> list[dict[str, np.ndarray]]:
    """The cached teacher outputs of each file, computing those not cached yet (resumable);
    raises QbsdError for a file that cannot be decoded."""
    from ..errors import QbsdError

    if any(load_outputs(path, str(cache_dir)) is None for path in paths):
        compute_outputs(paths, str(cache_dir), str(teacher_dir), log=log)
    outputs = [load_outputs(path, str(cache_dir)) for path in paths]
    failed = [path for path, value in zip(paths, outputs) if value is None]
    if failed:
        raise QbsdError(f"no teacher outputs for {len(failed)} files (first: {failed[0]}): they cannot be decoded")
    return outputs


def _tuned_midend(nodes: list, prefix: str, layers: list) -> tuple[list, list, str]:
    """Nodes and initializers of a teacher's fine-tuned mid-end (finetune.py's
    `MIDEND_CONVS`, `layers` its tuned `MidendLayer`s), beside the frozen one: a copy of
    every node between the first mid-end layer's output and the flattened pooled features,
    its outputs renamed and the tuned convolutions reading the tuned weights; `nodes` are
    the teacher's (names with `prefix`). Returns them and the tuned flattened features' name."""
    import onnx
    from onnx import numpy_helper

    from .finetune import FLATTEN, MIDEND_CONVS, MIDEND_INPUT

    step = f"{prefix}tuned-midend/"
    # the nodes that the first mid-end layer's output reaches ...
    reached, downstream = {prefix + MIDEND_INPUT}, []
    for node in nodes:
        if any(name in reached for name in node.input):
            downstream.append(node)
            reached.update(node.output)
    # ... and of them, those the flattened features need
    needed, copied = {prefix + FLATTEN}, []
    for node in reversed(downstream):
        if any(name in needed for name in node.output):
            copied.append(node)
            needed.update(node.input)
    renamed = {name: step + name.removeprefix(prefix) for node in copied for name in node.output}
    tuned_inputs = {}
    initializers = []
    for weights_name, layer in zip(MIDEND_CONVS, layers, strict=True):
        conv = next((n for n in copied if n.op_type == "Conv" and n.input[1] == prefix + weights_name), None)
        if conv is None:
            raise ValueError(
                f"{prefix}{weights_name} is not a convolution between the mid-end's first layer and pooling"
            )
        for name, value in ((conv.input[1], layer.weights), (conv.input[2], layer.bias)):
            tuned_inputs[name] = step + name.removeprefix(prefix)
            initializers.append(numpy_helper.from_array(value.astype(np.float32), tuned_inputs[name]))
    result = []
    for node in reversed(copied):
        copy = onnx.NodeProto.FromString(node.SerializeToString())
        copy.name = step + node.name.removeprefix(prefix) if node.name else ""
        for number, name in enumerate(copy.input):
            copy.input[number] = renamed.get(name, tuned_inputs.get(name, name))
        for number, name in enumerate(copy.output):
            copy.output[number] = renamed[name]
        result.append(copy)
    return result, initializers, renamed[prefix + FLATTEN]


def _tuned_backend(
    prefix: str, tuned: dict[str, np.ndarray], flatten: str | None = None
) -> tuple[list, list, str, str]:
    """Nodes and initializers of a teacher's fine-tuned dense layers (finetune.py), from its
    flattened pooled features (`flatten`, or the frozen teacher's), beside the frozen
    ones; returns them and the names of the tuned penultimate layer and probabilities."""
    from onnx import helper, numpy_helper

    from .finetune import BACKEND, FLATTEN

    def frozen(key: str) -> str:
        return prefix + BACKEND[key]

    tuned_names = {key: f"{prefix}tuned/{key}" for key in tuned}
    initializers = [numpy_helper.from_array(value.astype(np.float32), tuned_names[key]) for key, value in tuned.items()]
    step = f"{prefix}tuned/"
    nodes = [
        helper.make_node("Mul", [flatten or prefix + FLATTEN, frozen("bn9_scale")], [step + "bn9_scaled"]),
        helper.make_node("Add", [step + "bn9_scaled", frozen("bn9_shift")], [step + "bn9"]),
        helper.make_node("MatMul", [step + "bn9", tuned_names["dense_weights"]], [step + "dense_product"]),
        helper.make_node("Add", [step + "dense_product", tuned_names["dense_bias"]], [step + "dense"]),
        helper.make_node("Relu", [step + "dense"], [step + "relu"]),
        helper.make_node("Mul", [step + "relu", frozen("bn10_scale")], [step + "bn10_scaled"]),
        helper.make_node("Add", [step + "bn10_scaled", frozen("bn10_shift")], [step + "penultimate"]),
        helper.make_node("MatMul", [step + "penultimate", tuned_names["output_weights"]], [step + "output_product"]),
        helper.make_node("Add", [step + "output_product", tuned_names["output_bias"]], [step + "logits"]),
        helper.make_node("Sigmoid", [step + "logits"], [step + "probabilities"]),
    ]
    return nodes, initializers, step + "penultimate", step + "probabilities"


def build_onnx(
    heads: Heads,
    tags: list[str],
    output: Path,
    training_data: str,
    teacher_dir: Path = TEACHER_DIR,
    fine_tuned=None,
) -> str:
    """Write the accurate model: input `patches` (batch, 187, 96) log-mel, output `tags`
    (batch, len(tags) + len(TEACHER_TAGS)) per-patch probabilities; returns its model id.
    With `fine_tuned` (finetune.FineTuned), the 4Q columns come from its tuned dense layers
    and heads; the teacher-derived columns stay the frozen teachers' own."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .export import write_onnx
    from .pruning import NEAR_ZERO, pruned_teacher

    recipe = RECIPE if fine_tuned is None else FINETUNED_RECIPE if fine_tuned.midends is None else MIDEND_RECIPE
    names = teacher_tag_names(teacher_dir)
    matrix = teacher_tag_matrix(names)
    weights, bias = heads.folded() if fine_tuned is None else (fine_tuned.weights, fine_tuned.bias)
    nodes, initializers, teacher_outputs_, head_inputs = [], [], {}, {}
    opset = None
    for teacher in OUTPUT_TEACHERS:
        prefix = f"{_PREFIXES[teacher].lower()}/"
        model = onnx.compose.add_prefix(pruned_teacher(teacher_dir / f"{teacher}.onnx"), prefix)
        opset = opset or list(model.opset_import)
        nodes.append(helper.make_node("Identity", ["patches"], [f"{prefix}melspec"]))
        nodes.extend(model.graph.node)
        initializers.extend(model.graph.initializer)
        teacher_outputs_[teacher] = (f"{prefix}penultimate", f"{prefix}probabilities")
        head_inputs[teacher] = teacher_outputs_[teacher]
        if fine_tuned is not None:
            flatten = None
            if fine_tuned.midends is not None:
                midend_nodes, midend_initializers, flatten = _tuned_midend(
                    list(model.graph.node), prefix, fine_tuned.midends[teacher]
                )
                nodes.extend(midend_nodes)
                initializers.extend(midend_initializers)
            tuned_nodes, tuned_initializers, penultimate, probability = _tuned_backend(
                prefix, fine_tuned.backends[teacher], flatten
            )
            nodes.extend(tuned_nodes)
            initializers.extend(tuned_initializers)
            head_inputs[teacher] = (penultimate, probability)
    penultimates = [head_inputs[t][0] for t in OUTPUT_TEACHERS]
    head_probabilities = [head_inputs[t][1] for t in OUTPUT_TEACHERS]
    probabilities = [teacher_outputs_[t][1] for t in OUTPUT_TEACHERS]
    initializers += [
        numpy_helper.from_array(weights, "heads/weights"),
        numpy_helper.from_array(bias, "heads/bias"),
        numpy_helper.from_array(matrix, "teacher_tags/matrix"),
    ]
    nodes += [
        helper.make_node("Concat", [*penultimates, *head_probabilities], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "heads/weights"], ["heads/product"]),
        helper.make_node("Add", ["heads/product", "heads/bias"], ["heads/logits"]),
        helper.make_node("Sigmoid", ["heads/logits"], ["heads/tags"]),
        helper.make_node("Concat", probabilities, ["teacher_tags/probabilities"], axis=1),
        helper.make_node("MatMul", ["teacher_tags/probabilities", "teacher_tags/matrix"], ["teacher_tags/tags"]),
        helper.make_node("Concat", ["heads/tags", "teacher_tags/tags"], ["tags"], axis=1),
    ]
    vocabulary = [*tags, *TEACHER_TAGS]
    graph = helper.make_graph(
        nodes,
        "qbsd-accurate",
        [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["batch", 187, 96])],
        [helper.make_tensor_value_info("tags", TensorProto.FLOAT, ["batch", len(vocabulary)])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=opset, producer_name="qbsd")
    model.ir_version = 8
    # the teachers' unused outputs (logits, mean and max pools) and what only they need go
    model = onnx.utils.Extractor(model).extract_model(["patches"], ["tags"])
    digest = hashlib.sha256()
    for array in (weights, bias, matrix):
        digest.update(array.tobytes())
    digest.update(json.dumps(vocabulary).encode())
    for teacher in OUTPUT_TEACHERS:
        digest.update((teacher_dir / f"{teacher}.onnx").read_bytes())
    digest.update(f"pruned {NEAR_ZERO}".encode())
    if fine_tuned is not None:
        for teacher in OUTPUT_TEACHERS:
            for value in fine_tuned.backends[teacher].values():
                digest.update(value.tobytes())
            for layer in (fine_tuned.midends or {}).get(teacher, []):
                digest.update(layer.weights.tobytes() + layer.bias.tobytes())
    model_id = f"qbsd-{recipe}-{digest.hexdigest()[:10]}"
    metadata = {
        "qbsd.model_id": model_id,
        "qbsd.tags": json.dumps(vocabulary),
        "qbsd.front_end": MUSICNN_LOGMEL,
        "qbsd.front_end_params": json.dumps(FRONT_END),
        "qbsd.training_data": training_data,
        "qbsd.recipe": json.dumps(
            {
                "name": recipe,
                "paper_faithful": False,
                "settings": "beyond the paper: MTT_musicnn and MSD_musicnn (dead filters "
                f"with weight norms under {NEAR_ZERO} of their layer's largest removed) per 3 s log-mel patch; "
                f"4Q tags: logistic regression per tag (C={HEAD_C}, balanced) on their 500 "
                "standardised penultimate and probability outputs, fitted on clip means"
                + (
                    "; then both teachers' two dense layers"
                    + (" and their mid-end's upper two convolutions" if fine_tuned.midends is not None else "")
                    + " and those heads fine-tuned together on the labels (finetune.py)"
                    if fine_tuned is not None
                    else ""
                )
                + f"; {len(TEACHER_TAGS)} more tags: the frozen teachers' own, synonyms averaged",
            }
        ),
        "qbsd.summary": "accurate: the musicnn teachers with heads on the 4Q labels; slower than the fast model "
        "(models/README.md has both speeds and accuracies)",
        "qbsd.song_vector": "mean of per-patch outputs over non-overlapping 3 s patches",
        # unmeasured until benchmarks/duplicates.py measures this model: the strict default
        DUPLICATE_COSINE_KEY: f"{DEFAULT_DUPLICATE_COSINE}",
        "qbsd.teachers": "musicnn 0.1.0 (ISC licence) MTT_musicnn (trained on MagnaTagATune, audio CC BY-NC-SA) "
        "and MSD_musicnn (Million Song Dataset); see models/teacher/README.md",
    }
    write_onnx(model, output, {**{entry.key: entry.value for entry in model.metadata_props}, **metadata})
    return model_id


def train_and_export(
    songs, output: Path, cache_dir: Path | None = None, log=print, recipe: str = RECIPE, epochs: int | None = None
) -> str:
    """Fit the heads on every song of `songs` (datasets.LabelledSongs), for a
    `FINETUNING_RECIPES` recipe also fine-tune the teachers' layers (finetune.py, `epochs`
    of it), and write the model."""
    if recipe not in (RECIPE, *FINETUNING_RECIPES):
        raise ValueError(f"not a recipe of the accurate model: {recipe!r}")
    cache_dir = cache_dir or TEACHER_CACHE
    outputs = teacher_outputs(songs.paths, cache_dir, log=log)
    clip_features = np.stack([patch_features(value).mean(axis=0) for value in outputs]).astype(np.float64)
    heads = fit_heads(clip_features, songs.labels)
    output.parent.mkdir(parents=True, exist_ok=True)
    fine_tuned = None
    if recipe in FINETUNING_RECIPES:
        from dataclasses import replace

        from . import finetune

        settings = finetune.METHODS[recipe]
        settings = settings if epochs is None else replace(settings, epochs=epochs)
        inputs = finetune.training_inputs(songs.paths, settings.midend, cache_dir, TEACHER_DIR, log=log)
        fine_tuned = finetune.fine_tune(inputs, songs.labels, heads, settings, log=log)
    trained = (
        "heads trained"
        if fine_tuned is None
        else "heads and the teachers' last layers"
        + (" and upper mid-end" if fine_tuned.midends is not None else "")
        + " fine-tuned"
    )
    return build_onnx(
        heads,
        songs.tags,
        output,
        f"{songs.description}; {trained} on all {len(songs.paths)} songs",
        fine_tuned=fine_tuned,
    )


def real_label_aroc(songs, outputs: list[dict[str, np.ndarray]], teacher_dir: Path = TEACHER_DIR) -> dict[str, dict]:
    """For each teacher-derived tag with a 4Q label of the same meaning (REAL_LABEL_MATCHES):
    the AROC of its song score (the mean over patches, as the model computes it) against
    that label on the clips, and the label's positives. No training is involved: these tags
    are the teachers' own, so every clip is held out."""
    from sklearn.metrics import roc_auc_score

    matrix = teacher_tag_matrix(teacher_tag_names(teacher_dir))
    names = list(TEACHER_TAGS)
    scores = np.stack([(patch_features(value)[:, -matrix.shape[0] :] @ matrix).mean(axis=0) for value in outputs])
    report = {}
    for tag, label in REAL_LABEL_MATCHES.items():
        truth = songs.labels[:, songs.tags.index(label)]
        if 0 < truth.sum() < len(truth):
            report[tag] = {
                "label": label,
                "positives": int(truth.sum()),
                "aroc": float(roc_auc_score(truth, scores[:, names.index(tag)])),
            }
    return report
