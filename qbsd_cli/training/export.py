"""Export a trained PatchCNN (or a HybridTagger) to a self-describing ONNX file (needs the `train` extra)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ..features import FeatureParams
from ..frontends import BAND_WINDOW_FRAMES, LOGMEL_BANDS, MFCC_BANDS
from ..logmel import N_MELS
from ..model import DUPLICATE_COSINE_KEY
from ..settings import DEFAULT_DUPLICATE_COSINE


def librosa_mel_basis(params: FeatureParams) -> np.ndarray:
    """The slaney mel filterbank from librosa, shape (n_mels, 1 + n_fft // 2), float32.

    Slow on first call (librosa's lazy imports); used at training/export time only.
    """
    import librosa

    return librosa.filters.mel(
        sr=params.sample_rate,
        n_fft=params.n_fft,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
        htk=False,
        norm="slaney",
    ).astype(np.float32)


def encode_array(array: np.ndarray) -> str:
    """A numpy array as base64 .npy text, to travel in ONNX string metadata."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


OPSET = 17


def write_onnx(model, path: str | os.PathLike[str], metadata: dict[str, str]) -> None:
    """Save the ONNX `model` (an onnx.ModelProto) to `path` with exactly `metadata` as its
    metadata, checked first. The file appears whole or not at all: it is written under a
    name of its own in the same folder, then renamed; a failed write leaves nothing."""
    import tempfile

    import onnx

    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        onnx.save(model, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_onnx(
    network,
    path: str,
    tags: list[str],
    params: FeatureParams,
    mel_basis: np.ndarray,
    recipe_name: str,
    recipe_description: str,
    training_data: str,
    paper_faithful: bool,
    extra: dict | None = None,
    band_windows: bool = False,
) -> str:
    """Write the ONNX model with its metadata; returns the model id. `band_windows`: the
    patch half takes band windows (frontends.MFCC_BANDS, (batch, 258, 96)), not MFCC patches.

    The model id is `qbsd-<recipe>-<first 10 hex of sha256 of the weights and vocabulary>`,
    so a retrained or changed model always gets a new id.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from .network import HybridTagger

    network.eval()
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(json.dumps(tags).encode())
    digest.update(params.to_json().encode())

    hybrid = isinstance(network, HybridTagger)
    if hybrid:
        digest.update(repr(network.statistics_weight).encode())
        if network.statistics_only:
            digest.update(repr(network.statistics_only).encode())
    model_id = f"qbsd-{recipe_name}-{digest.hexdigest()[:10]}"

    patch_shape = (BAND_WINDOW_FRAMES, N_MELS) if band_windows else params.patch_shape
    inputs, input_names, output_names = (torch.zeros((2, *patch_shape)),), ["patches"], ["tags"]
    dynamic_axes = {"patches": {0: "batch"}, "tags": {0: "batch"}}
    statistics_dim = network.statistics_model.input_dim if hybrid else 0
    if hybrid:
        inputs += (torch.zeros((1, statistics_dim)),)
        input_names.append("song_statistics")
        output_names.append("statistics_tags")
        dynamic_axes.update({"song_statistics": {0: "songs"}, "statistics_tags": {0: "songs"}})
    temporary = f"{path}.{os.getpid()}.export.tmp"
    torch.onnx.export(
        network,
        inputs,
        temporary,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=OPSET,
        dynamo=False,
    )
    model = onnx.load(temporary)
    os.remove(temporary)
    if hybrid:
        # a default for song_statistics makes it optional: a caller that only wants the
        # per-patch `tags` (the documented single-input interface) feeds patches alone
        model.graph.initializer.append(
            numpy_helper.from_array(np.zeros((1, statistics_dim), dtype=np.float32), "song_statistics")
        )
    metadata = {
        "qbsd.model_id": model_id,
        # unmeasured until benchmarks/duplicates.py measures this model: the strict default
        DUPLICATE_COSINE_KEY: f"{DEFAULT_DUPLICATE_COSINE}",
        "qbsd.tags": json.dumps(tags),
        "qbsd.feature_params": params.to_json(),
        "qbsd.mel_basis": encode_array(mel_basis.astype(np.float32)),
        "qbsd.training_data": training_data,
        "qbsd.recipe": json.dumps(
            {"name": recipe_name, "settings": recipe_description, "paper_faithful": paper_faithful}
        ),
        "qbsd.song_vector": "mean of per-patch outputs over non-overlapping patches",
        "qbsd.summary": f"fast: {recipe_name}, on the paper's MFCC patches "
        "(models/README.md has both shipped models' speeds and accuracies)",
    }
    if hybrid:
        metadata["qbsd.statistics_weight"] = repr(float(network.statistics_weight))
        metadata["qbsd.song_vector"] = (
            f"{1 - network.statistics_weight:g} x the mean of per-patch `tags` over non-overlapping "
            f"patches + {network.statistics_weight:g} x `statistics_tags` of the song_statistics "
            "(182: per-coefficient MFCC mean and standard deviation, correlations, skewness and "
            "kurtosis of the 13 cepstral coefficients over the frames); for songs longer "
            "than a training clip, per 30 s segment, weighted by the segment's patches"
        )
        features = network.statistics_model.statistics_features
        metadata["qbsd.statistics_features"] = "+".join(features)
        if LOGMEL_BANDS in features:
            metadata["qbsd.song_vector"] += (
                ", each followed by that segment's 320 band statistics (frontends.MfccFrontEnd."
                "patches_and_bands: the mean, standard deviation and mean absolute change of its log-mel "
                "in 96 Slaney bands over 0-11,025 Hz from the MFCC's own STFT, and its onset autocorrelation)"
            )
            metadata["qbsd.summary"] = (
                f"fast: {recipe_name}, on the paper's MFCC patches and song statistics with 96 log-mel "
                "bands (models/README.md has both shipped models' speeds and accuracies)"
            )
        if network.statistics_only:
            statistics_only = tags[-network.statistics_only :]
            metadata["qbsd.statistics_only_tags"] = json.dumps(statistics_only)
            metadata["qbsd.song_vector"] += (
                f"; the last {len(statistics_only)} tags (qbsd.statistics_only_tags) are `statistics_tags` alone"
            )
    if band_windows:
        metadata["qbsd.front_end"] = MFCC_BANDS
        if not hybrid:
            raise ValueError("band windows: the fast model's band student is the patch half of a blend")
        features = network.statistics_model.statistics_features
        inputs = "182 MFCC statistics" + (
            ", then the segment's 320 band statistics" if LOGMEL_BANDS in features else ""
        )
        metadata["qbsd.song_vector"] = (
            f"{1 - network.statistics_weight:g} x the mean of per-window `tags` over non-overlapping 3 s windows "
            f"(258 frames) of the 96-band log-mel from the MFCC's STFT (frontends.MfccBandsFrontEnd) + "
            f"{network.statistics_weight:g} x `statistics_tags` of the song_statistics ({inputs}); for songs "
            "longer than a training clip, per 30 s segment, weighted by the segment's windows"
        )
        metadata["qbsd.summary"] = (
            f"fast: {recipe_name}, a band student (a small CNN over 3 s of 96 log-mel bands, taught by the musicnn "
            "teachers) and a song-statistics student (models/README.md has both shipped models' speeds and accuracies)"
        )
    metadata.update(extra or {})
    model.producer_name = "qbsd"
    write_onnx(model, path, metadata)
    return model_id


def set_metadata(path: str | os.PathLike[str], key: str, value: str) -> None:
    """Write one metadata entry of an ONNX model file in place (atomically); its weights,
    and so its model id, stay as they are. For a measured figure such as the duplicate
    cosine (DUPLICATE_COSINE_KEY), which is known only after the model is made."""
    import onnx

    model = onnx.load(str(path))
    kept = {entry.key: entry.value for entry in model.metadata_props if entry.key != key}
    write_onnx(model, path, {**kept, key: value})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Record a model's measured duplicate cosine (benchmarks/duplicates.py) in its metadata."
    )
    parser.add_argument("model", help="the ONNX model file")
    parser.add_argument("--duplicate-cosine", type=float, required=True)
    arguments = parser.parse_args()
    set_metadata(arguments.model, DUPLICATE_COSINE_KEY, f"{arguments.duplicate_cosine:g}")
