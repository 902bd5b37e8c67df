"""The musicnn teachers: ONNX conversion, cached teacher outputs, and the frozen-teacher probe.

    python -m qbsd_cli.training.teacher convert --output models/teacher
    python -m qbsd_cli.training.teacher outputs --moods4q DIR [--corpus MANIFEST] [--cache DIR]
    python -m qbsd_cli.training.teacher probe --moods4q DIR [--cache DIR] [--folds results/folds.npy]

`convert` runs in the teacher venv (TensorFlow 2.21 + tf-keras + tf2onnx + musicnn 0.1.0,
see models/teacher/README.md); `outputs` and `probe` need only onnxruntime, numpy,
soundfile and soxr (and scikit-learn for the probe): no TensorFlow.

Conversion fixes the two traps of `musicnn.extractor`: the graph is built with
training=False as a Python bool (not a placeholder), so batch normalisation uses its moving
averages and dropout is absent from the frozen graph; and the checkpoint restore fails
loudly (musicnn wraps `saver.restore` in a bare `except:`, so a failed restore silently runs
randomly initialised weights). Its front end is `qbsd_cli.logmel`, which also takes the log
compression in float32 where musicnn's float16 overflows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time

import numpy as np

from .. import logmel
from ..frontends import LogMelFrontEnd

#: The four models of the musicnn 0.1.0 wheel, each with 50 tags.
TEACHERS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
#: The teachers whose outputs are cached for distillation and the probe.
OUTPUT_TEACHERS = ("MTT_musicnn", "MSD_musicnn")
INPUT_NAME = "melspec"
OPSET = 17
#: Seconds of audio per cached segment (the unit of qbsd's song analysis).
SEGMENT_SECONDS = 30.0
#: Segments shorter than this after the first one of a file are not worth a patch of mostly
#: padding; a file's first segment is always kept (padded to one patch if need be). The
#: accurate model's front end applies the same rule at run time.
MIN_SEGMENT_SECONDS = LogMelFrontEnd.min_later_segment_seconds
FRONT_END = {
    "sample_rate": logmel.SAMPLE_RATE,
    "n_fft": logmel.N_FFT,
    "hop_length": logmel.HOP_LENGTH,
    "window": "hann (periodic)",
    "center": True,
    "pad_mode": "reflect",
    "power": 2.0,
    "n_mels": logmel.N_MELS,
    "mel": "librosa.filters.mel: Slaney scale, Slaney norm, fmin 0, fmax 8000 Hz",
    "compression": "log10(10000 * mel + 1); mel power rounded to float16 first, the log in float32",
    "patch_frames": logmel.PATCH_FRAMES,
    "patch_seconds": round(logmel.PATCH_FRAMES * logmel.HOP_LENGTH / logmel.SAMPLE_RATE, 3),
    "patch_hop_frames": logmel.PATCH_FRAMES,
    "implementation": "qbsd_cli.logmel",
}
REFERENCE_FILE = "reference.npz"
REFERENCE_SEED = 20190601


# ----------------------------------------------------------------------------- conversion


def _musicnn():
    """Import TensorFlow (legacy Keras, without oneDNN) and musicnn's model code."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf-keras
    # oneDNN's kernels round differently from TensorFlow's own (its start-up warning says
    # so); the reference outputs are those of the plain kernels
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from musicnn import configuration, models

    return tf, models, configuration


def _checkpoint_prefix(name: str) -> str:
    """The wheel's checkpoint of `name`: files `.index` and `.data-*` in musicnn/<name>/, so
    the prefix is the folder with a trailing slash (its `checkpoint` file names a path on the
    authors' machine and cannot be used)."""
    import musicnn

    return os.path.join(os.path.dirname(musicnn.__file__), name) + os.sep


def _restore(tf, session, prefix: str) -> int:
    """Restore every graph variable from `prefix` and check it, raising on any failure.

    Returns the number of variables restored. Besides letting Saver.restore raise (no bare
    except here), every variable's value is compared with the checkpoint's, so a variable
    left at its random initial value cannot pass.
    """
    variables = tf.compat.v1.global_variables()
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    stored = reader.get_variable_to_shape_map()
    missing = [v.op.name for v in variables if v.op.name not in stored]
    if missing:
        raise RuntimeError(f"checkpoint {prefix} lacks {len(missing)} variables: {missing[:5]}")
    tf.compat.v1.train.Saver(variables).restore(session, prefix)
    for variable, value in zip(variables, session.run(variables)):
        if not np.array_equal(value, reader.get_tensor(variable.op.name)):
            raise RuntimeError(f"{variable.op.name} differs from the checkpoint after restore")
    # the checkpoint also holds Adam's slots and beta powers, which inference does not use
    used = {v.op.name for v in variables}
    unused = [
        key for key in stored if key not in used and "Adam" not in key and key not in ("beta1_power", "beta2_power")
    ]
    if unused:
        raise RuntimeError(f"checkpoint variables the graph does not use: {unused[:5]}")
    return len(variables)


def frozen_graph(name: str):
    """Build teacher `name` for inference, restore its weights, and freeze it.

    Returns (graph_def, output names, TensorFlow outputs as a function of a (n, 187, 96)
    float32 batch, number of restored variables). Outputs of the musicnn models:
    probabilities and logits (n, 50), penultimate (n, 200: the batch-normalised 200-unit
    dense layer), mean_pool and max_pool (n, 753: the front- and mid-end features pooled
    over the patch's 187 frames); of the VGG models: probabilities, logits (n, 50) and
    penultimate (n, 256: pool5 flattened, the output layer's input).
    """
    tf, models, configuration = _musicnn()
    n_tags = len(configuration.MTT_LABELS if name.startswith("MTT") else configuration.MSD_LABELS)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, logmel.PATCH_FRAMES, logmel.N_MELS], name=INPUT_NAME)
        # training=False as a Python bool: batch normalisation is built with its moving
        # averages and dropout as identity, so no tf.cond switch on a placeholder survives
        built = models.define_model(x, False, name, n_tags)
        logits = built[0]
        named = {"probabilities": tf.nn.sigmoid(logits), "logits": logits}
        if "vgg" in name:
            named["penultimate"] = tf.compat.v1.layers.flatten(built[5])
        else:
            named.update(penultimate=built[8], mean_pool=built[6], max_pool=built[7])
        outputs = [tf.identity(named[key], name=key) for key in named]
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        session = tf.compat.v1.Session(graph=graph, config=config)
        restored = _restore(tf, session, _checkpoint_prefix(name))
        graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), list(named))

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        values = session.run(outputs, feed_dict={x: batch})
        return dict(zip(named, values))

    return graph_def, list(named), run, restored


def _rename(model, old: str, new: str) -> None:
    """Rename a tensor everywhere in an ONNX graph (tf2onnx keeps TensorFlow's `name:0`)."""
    for node in model.graph.node:
        node.input[:] = [new if value == old else value for value in node.input]
        node.output[:] = [new if value == old else value for value in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name == old:
            value.name = new


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _provenance(name: str) -> dict:
    import musicnn
    import tensorflow as tf
    import tf2onnx

    prefix = _checkpoint_prefix(name)
    with open(os.path.join(prefix, "experiment.result")) as handle:
        result = " ".join(handle.read().split())
    return {
        "source": f"musicnn 0.1.0 wheel (PyPI, ISC licence, Pons & Serra 2019), checkpoint musicnn/{name}/",
        "checkpoint_data_sha256": _file_sha256(os.path.join(prefix, ".data-00000-of-00001")),
        "trained_on": (
            "MagnaTagATune (audio CC BY-NC-SA)"
            if name.startswith("MTT")
            else "Million Song Dataset (last.fm tags, 7digital previews)"
        ),
        "published_result": result,
        "converted_with": {
            "tensorflow": tf.__version__,
            "tf2onnx": tf2onnx.__version__,
            "musicnn": getattr(musicnn, "__version__", "0.1.0"),
            "opset": OPSET,
        },
        "command": "python -m qbsd_cli.training.teacher convert --output models/teacher",
        "fixes": "graph built with training=False as a Python bool; restore checked and failing loudly; "
        "log compression in float32 (qbsd_cli.logmel)",
    }


def to_onnx(name: str, graph_def, output_names: list[str]):
    """Convert a frozen teacher to an ONNX model: input `melspec` (batch, 187, 96) float32,
    outputs under `output_names`, metadata: tags, front end, outputs and provenance."""
    import tf2onnx
    from musicnn import configuration

    model, _ = tf2onnx.convert.from_graph_def(
        graph_def,
        name=name,
        input_names=[f"{INPUT_NAME}:0"],
        output_names=[f"{key}:0" for key in output_names],
        opset=OPSET,
    )
    _rename(model, f"{INPUT_NAME}:0", INPUT_NAME)
    for key in output_names:
        _rename(model, f"{key}:0", key)
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    tags = configuration.MTT_LABELS if name.startswith("MTT") else configuration.MSD_LABELS
    outputs = {
        "probabilities": f"(batch, {len(tags)}) sigmoid of the logits, in the order of `tags`",
        "logits": f"(batch, {len(tags)})",
    }
    if "vgg" in name:
        outputs["penultimate"] = "(batch, 256) pool5 flattened (the output layer's input)"
    else:
        outputs["penultimate"] = "(batch, 200) batch-normalised ReLU dense layer (the output layer's input)"
        outputs["mean_pool"] = "(batch, 753) front- and mid-end features averaged over the 187 frames"
        outputs["max_pool"] = "(batch, 753) the same, maximum over the frames"
    metadata = {
        "name": name,
        "tags": json.dumps(list(tags)),
        "front_end": json.dumps(FRONT_END),
        "input": f"{INPUT_NAME}: (batch, {logmel.PATCH_FRAMES}, {logmel.N_MELS}) float32 log-mel patches",
        "outputs": json.dumps(outputs),
        "provenance": json.dumps(_provenance(name)),
        "licence": "musicnn code and weights: ISC; see models/teacher/README.md for the training data",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "qbsd_cli.training.teacher"
    model.doc_string = f"musicnn {name} teacher (musicnn 0.1.0, ISC), converted for qbsd"
    return model


def reference_audio(seconds: float = 12.0, seed: int = REFERENCE_SEED) -> np.ndarray:
    """Deterministic test audio, mono float32 at 16 kHz, shape (seconds * 16000,).

    A major triad with harmonics under a slow tremolo, pink-ish noise bursts, a rising
    chirp, and a loud section whose mel power exceeds musicnn's float16 overflow, so the
    reference covers quiet, tonal, noisy and loud inputs.
    """
    rate = logmel.SAMPLE_RATE
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(0.15 / k * np.sin(2 * np.pi * k * f * t) for f in (220.0, 277.18, 329.63) for k in (1, 2, 3))
    chord *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)
    noise = np.cumsum(rng.standard_normal(len(t))) * 0.002
    noise = (noise - np.convolve(noise, np.ones(400) / 400, mode="same")) * (np.sin(2 * np.pi * 2 * t) > 0.3)
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 300 * t**2 / seconds)) * (t > seconds / 2)
    signal = chord + noise + chirp
    signal[int(0.75 * len(t)) :] *= 4.0  # loud: mel power well above 6.55
    return signal.astype(np.float32)


def reference_input() -> np.ndarray:
    """The reference teacher input, shape (4, 187, 96) float32: the log-mel patches of
    `reference_audio`, rounded to float16 so that the file stores them exactly."""
    return logmel.patches(logmel.log_mel(reference_audio())).astype(np.float16).astype(np.float32)


def convert(output_dir: str, names=TEACHERS, log=print) -> dict[str, dict]:
    """Convert each teacher to `output_dir`/<name>.onnx and save TensorFlow's outputs for
    `reference_input()` to `output_dir`/reference.npz. Returns per teacher: size in bytes,
    variables restored, and the largest ONNX-vs-TensorFlow difference per output."""
    import onnx
    import onnxruntime

    os.makedirs(output_dir, exist_ok=True)
    batch = reference_input()
    reference = {"input": batch.astype(np.float16)}
    summary = {}
    for name in names:
        started = time.perf_counter()
        graph_def, output_names, run, restored = frozen_graph(name)
        expected = run(batch)
        model = to_onnx(name, graph_def, output_names)
        onnx.checker.check_model(model)
        path = os.path.join(output_dir, f"{name}.onnx")
        onnx.save(model, path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = dict(zip(output_names, session.run(output_names, {INPUT_NAME: batch})))
        differences = {key: float(np.abs(got[key] - expected[key]).max()) for key in output_names}
        for key in output_names:
            reference[f"{name}/{key}"] = expected[key].astype(np.float32)
        summary[name] = {"bytes": os.path.getsize(path), "variables": restored, "max_abs_difference": differences}
        log(
            f"{name}: {restored} variables restored, {os.path.getsize(path) / 1e6:.2f} MB, "
            f"ONNX vs TF max |diff| {differences} ({time.perf_counter() - started:.0f} s)"
        )
    np.savez_compressed(os.path.join(output_dir, REFERENCE_FILE), **reference)
    return summary


# ----------------------------------------------------------------------------- teacher outputs


def open_teachers(model_dir: str, names=OUTPUT_TEACHERS, expose: dict[str, str] | None = None) -> dict:
    """onnxruntime sessions of the teachers in `model_dir` without their dead filters
    (pruning.py: outputs moved by float rounding, 2.1 and 4.3 times faster), one thread
    each: the machine is shared, and the patches of a segment are batched instead.
    `expose` maps new output names to inner tensors to add as outputs (finetune.py's
    pooled features and mid-end inputs)."""
    import onnxruntime
    from onnx import TensorProto, helper

    from .pruning import pruned_teacher

    def model(name: str):
        graph = pruned_teacher(os.path.join(model_dir, f"{name}.onnx"))
        for output, tensor in (expose or {}).items():
            graph.graph.node.append(helper.make_node("Identity", [tensor], [output]))
            graph.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))
        return graph.SerializeToString()

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return {
        name: onnxruntime.InferenceSession(model(name), options, providers=["CPUExecutionProvider"]) for name in names
    }


def legacy_cache_key(path: str) -> str:
    """The older cache file stem of an audio file (its absolute path, size and mtime);
    entries under it are renamed to `cache_path`'s content name when met."""
    info = os.stat(path)
    text = f"{os.path.abspath(path)}\0{info.st_size}\0{info.st_mtime_ns}"
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:20]


def cache_path(cache_dir: str, path: str) -> str:
    """The cache file of an audio file's outputs, named by its content (file_cache.py), so
    an edited file is recomputed and a re-mounted or moved one is not."""
    from .file_cache import entry_path

    return entry_path(cache_dir, path, ".npz", legacy_cache_key(path))


def file_outputs(
    path: str, teachers: dict, outputs: tuple[str, ...] = ("probabilities", "penultimate")
) -> dict[str, np.ndarray]:
    """Teacher outputs for every 3 s patch of every 30 s segment of `path`.

    Segments follow `qbsd_cli.audio.decode_segments` (consecutive, each decoded and
    resampled to 16 kHz on its own, as a 30 s clip is); each is cut into musicnn's
    non-overlapping 187-frame patches. Returns, for n patches:
    `segment` (n,) int32 segment number; `start` (n,) float32 patch start in seconds from
    the start of the file; `<teacher>/<output>` per teacher and output of `outputs`
    (by default probabilities (n, 50) and penultimate (n, 200)), float32; `seconds` ()
    float64 decoded audio length.
    """
    from ..audio import decode_segments

    parts, seconds = [], 0.0
    for index, segment in enumerate(decode_segments(path, logmel.SAMPLE_RATE, SEGMENT_SECONDS)):
        seconds += segment.duration
        if index > 0 and segment.duration < MIN_SEGMENT_SECONDS:
            continue
        parts.append(segment_outputs(segment.samples, index, teachers, outputs))
    result = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    result["seconds"] = np.float64(seconds)
    return result


def segment_outputs(
    samples: np.ndarray,
    segment: int,
    teachers: dict,
    outputs: tuple[str, ...] = ("probabilities", "penultimate"),
) -> dict[str, np.ndarray]:
    """Teacher outputs of every 3 s patch of one 30 s segment, mono float32 `samples` at
    16 kHz, number `segment` of its file: `segment` (n,) int32, `start` (n,) float32 in
    seconds from the file's start, and `<teacher>/<output>` as `file_outputs` gives them."""
    patch_seconds = logmel.PATCH_FRAMES * logmel.HOP_LENGTH / logmel.SAMPLE_RATE
    batch = logmel.patches(logmel.log_mel(samples))
    result = {
        "segment": np.full(len(batch), segment, dtype=np.int32),
        "start": (segment * SEGMENT_SECONDS + patch_seconds * np.arange(len(batch))).astype(np.float32),
    }
    for name, session in teachers.items():
        # batches of one 30 s segment (10 patches): onnxruntime's working memory stays small
        # for a 10-minute file, and this is the batch whose speed was measured (0.38 s)
        values = [session.run(list(outputs), {INPUT_NAME: batch[i : i + 10]}) for i in range(0, len(batch), 10)]
        for number, output in enumerate(outputs):
            result[f"{name}/{output}"] = np.concatenate([v[number] for v in values])
    return result


def _save_atomic(path: str, arrays: dict) -> None:
    """np.savez to a temporary file in the same folder, then rename: a run stopped midway
    leaves no half-written cache file that a later run would take as done."""
    handle = tempfile.NamedTemporaryFile(dir=os.path.dirname(path), prefix=".tmp-", suffix=".npz", delete=False)
    try:
        with handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise


def moods4q_paths(root: str) -> list[str]:
    """The clips of the 4Q layout in metadata.csv order (`audio/<Song>.mp3`)."""
    import csv

    with open(os.path.join(root, "metadata.csv"), encoding="latin-1", newline="") as handle:
        return [os.path.join(root, "audio", row["Song"] + ".mp3") for row in csv.DictReader(handle)]


def corpus_paths(corpus: str) -> list[str]:
    """Decodable music files of a corpus manifest (qbsd_cli.training.corpus), given the
    manifest itself or the corpus cache folder holding manifest.json."""
    manifest = os.path.join(corpus, "manifest.json") if os.path.isdir(corpus) else corpus
    with open(manifest) as handle:
        entries = json.load(handle)["files"]
    return [entry["path"] for entry in entries if entry["decodable"]]


def compute_outputs(
    paths: list[str],
    cache_dir: str,
    model_dir: str,
    log=print,
    outputs: tuple[str, ...] = ("probabilities", "penultimate"),
    expose: dict[str, str] | None = None,
) -> dict:
    """Cache `file_outputs` (of `outputs`, with `expose` as open_teachers takes it) of each
    file as `cache_path(cache_dir, path)`, skipping files already cached; a file that
    cannot be decoded gets a cache file with its `error`, so it is not retried. Returns
    counts and speed."""
    from ..audio import AudioError
    from ..display import shown_path, shown_reason

    os.makedirs(cache_dir, exist_ok=True)
    teachers = open_teachers(model_dir, expose=expose)
    done = skipped = failed = 0
    audio_seconds = compute_seconds = 0.0
    for number, path in enumerate(paths, 1):
        target = cache_path(cache_dir, path)
        if os.path.exists(target):
            skipped += 1
            continue
        started = time.perf_counter()
        try:
            arrays = file_outputs(path, teachers, outputs)
        except AudioError as error:
            failed += 1
            # a corpus file's name and the decoder's message are untrusted text
            log(f"[{number}/{len(paths)}] {shown_path(path)}: {shown_reason(str(error))}")
            _save_atomic(target, {"path": np.array(path), "error": np.array(str(error))})
            continue
        elapsed = time.perf_counter() - started
        arrays["path"] = np.array(path)
        _save_atomic(target, arrays)
        done += 1
        audio_seconds += float(arrays["seconds"])
        compute_seconds += elapsed
        if done % 25 == 0 or number == len(paths) or arrays["seconds"] > 600:
            log(
                f"[{number}/{len(paths)}] {done} computed, {skipped} cached, {failed} failed; "
                f"{audio_seconds / 3600:.2f} h of audio in {compute_seconds / 60:.1f} min, "
                f"{audio_seconds / max(compute_seconds, 1e-9):.0f}x realtime "
                f"({len(teachers)} teachers, decoding included)"
            )
    return {
        "computed": done,
        "cached": skipped,
        "failed": failed,
        "audio_hours": audio_seconds / 3600,
        "x_realtime": audio_seconds / max(compute_seconds, 1e-9),
    }


def load_outputs(path: str, cache_dir: str) -> dict[str, np.ndarray] | None:
    """The cached teacher outputs of `path`, or None when not (yet) cached or undecodable."""
    target = cache_path(cache_dir, path)
    if not os.path.exists(target):
        return None
    with np.load(target) as data:
        return None if "error" in data.files else {key: data[key] for key in data.files}


# ----------------------------------------------------------------------------- probe


def clip_embedding(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """A clip's probe input, shape (500,): the patch means of the MTT and MSD musicnn
    penultimate layers (200 + 200) and tag probabilities (50 + 50)."""
    parts = [
        outputs[f"{name}/{key}"].mean(axis=0) for key in ("penultimate", "probabilities") for name in OUTPUT_TEACHERS
    ]
    return np.concatenate(parts).astype(np.float64)


def probe(
    moods4q_root: str, cache_dir: str, folds_path: str | None = None, C: float = 0.01, seed: int = 0, log=print
) -> dict:
    """The frozen-teacher probe: a logistic regression per 4Q tag on `clip_embedding`
    (standardised on the training folds; C=`C`, balanced classes), artist-grouped 5-fold.

    Folds: `folds_path` (results/folds.npy of `qbsd evaluate`, one fold number per clip in
    metadata order) when given and matching, else `evaluation.artist_folds`' split with
    `seed` (GroupKFold by artist; recomputed here because importing the evaluation module
    pulls in torch, which the teacher venv lacks). Returns the pooled out-of-fold AROC and
    MAP (tags with >= 5 positives), annotation F (top 10) and quadrant accuracy, in the
    units of `qbsd evaluate`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    from . import metrics
    from .datasets import load_moods4q

    songs = load_moods4q(moods4q_root)
    outputs = [load_outputs(path, cache_dir) for path in songs.paths]
    missing = [path for path, value in zip(songs.paths, outputs) if value is None]
    if missing:
        raise SystemExit(
            f"{len(missing)} clips have no cached teacher outputs (first: {missing[0]}); run `outputs` first"
        )
    x = np.stack([clip_embedding(value) for value in outputs])
    fold_of = np.zeros(len(songs.paths), dtype=int)
    splitter = GroupKFold(n_splits=5, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(x, groups=songs.groups)):
        fold_of[test] = fold
    if folds_path and os.path.exists(folds_path):
        saved = np.load(folds_path)
        if len(saved) == len(fold_of):
            same = "identical to" if np.array_equal(saved, fold_of) else "differing from"
            log(f"folds from {folds_path} ({same} the artist split with seed {seed})")
            fold_of = saved
    labels = songs.labels
    scores = np.zeros(labels.shape, dtype=np.float64)
    for fold in range(int(fold_of.max()) + 1):
        train, test = fold_of != fold, fold_of == fold
        scaler = StandardScaler().fit(x[train])
        x_train, x_test = scaler.transform(x[train]), scaler.transform(x[test])
        for tag in range(labels.shape[1]):
            y = labels[train, tag]
            if y.min() == y.max():  # no positive (or no negative) clip in the training folds
                scores[test, tag] = y.mean()
                continue
            model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
            scores[test, tag] = model.fit(x_train, y).predict_proba(x_test)[:, 1]
    quadrants = [songs.tags.index(f"quadrant:q{i}") for i in range(1, 5)]
    retrieval = metrics.retrieval_scores(labels, scores)
    return {
        "clips": len(songs.paths),
        "vocabulary": len(songs.tags),
        "tags_evaluated": retrieval["tags"],
        "C": C,
        "aroc": retrieval["aroc"],
        "map": retrieval["map"],
        "annotation_f": metrics.annotation_scores(labels, scores)["f"],
        "quadrant_accuracy": metrics.quadrant_scores(labels, scores, quadrants)["accuracy"],
    }


# ----------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qbsd_cli.training.teacher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    default_cache = os.path.expanduser("~/.cache/qbsd/teacher-outputs")
    default_models = os.path.join(os.path.dirname(__file__), "..", "..", "models", "teacher")

    convert_parser = commands.add_parser(
        "convert", help="musicnn checkpoints -> ONNX + reference.npz (teacher venv: TensorFlow, tf2onnx, musicnn)"
    )
    convert_parser.add_argument(
        "--output", default="models/teacher", help="folder for <name>.onnx (default %(default)s)"
    )
    convert_parser.add_argument("--models", default=",".join(TEACHERS), help="comma-separated (default %(default)s)")

    outputs_parser = commands.add_parser(
        "outputs", help="cache MTT+MSD musicnn outputs per 3 s patch of every 30 s segment (resumable)"
    )
    outputs_parser.add_argument("--moods4q", help="4Q dataset folder (metadata.csv, audio/): its clips come first")
    outputs_parser.add_argument("--corpus", help="corpus manifest.json or its folder (qbsd_cli.training.corpus)")
    outputs_parser.add_argument("--cache", default=default_cache, help="output folder (default %(default)s)")
    outputs_parser.add_argument("--teachers", default=default_models, help="folder of the ONNX teachers")

    probe_parser = commands.add_parser("probe", help="logistic probe on the cached outputs of the 4Q clips")
    probe_parser.add_argument("--moods4q", required=True)
    probe_parser.add_argument("--cache", default=default_cache)
    probe_parser.add_argument("--folds", default="results/folds.npy", help="fold per clip (default %(default)s)")
    probe_parser.add_argument("--C", type=float, default=0.01, help="inverse regularisation (default %(default)s)")

    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)

    if args.command == "convert":
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning)  # tf.compat.v1.layers deprecations
        summary = convert(args.output, [name.strip() for name in args.models.split(",")], log)
        print(json.dumps(summary, indent=2))
    elif args.command == "outputs":
        paths = (moods4q_paths(args.moods4q) if args.moods4q else []) + (
            corpus_paths(args.corpus) if args.corpus else []
        )
        if not paths:
            parser.error("give --moods4q and/or --corpus")
        log(f"{len(paths)} files -> {args.cache}")
        print(json.dumps(compute_outputs(paths, args.cache, args.teachers, log)), flush=True)
    else:
        print(json.dumps(probe(args.moods4q, args.cache, args.folds, args.C, log=log), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
