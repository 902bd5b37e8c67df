"""Int8 convolutions for a trained model: a copy of its ONNX graph with every convolution in
static QDQ int8 (needs the train extra's `onnx`; onnxruntime's own quantisation tools).

Why only the convolutions, and why static (benchmarks/QUANTISATION.md, the model card): on
the band student they are most of the network's time, and onnxruntime's static int8
convolution kernels made the wide student's network 2.65x faster while no tag score moved
more than 0.015; dynamic int8, or int8 of every operator, bought less or moved more.

Weights are int8 per output channel; activations uint8 with ranges from calibration, which
runs the float model on real music exactly as `qbsd tag` would (`TagModel.network_inputs`):
by default one 30 s segment (the middle one, as `qbsd tag` chooses a single segment) of
each of `CalibrationSettings.files` files spread evenly over the corpus manifest
(training/corpus.py), the unlabelled music the band student learnt from, so no labelled
clip that a figure is measured on sets a range.

The copy is a new model: its id is `qbsd-<recipe>-int8-<10 hex>` (sha256 of the float
model's id and the quantised graph); its duplicate cosine is the strict default until
measured (benchmarks/duplicates.py, then `python -m qbsd_cli.training.export`); the rest
of its metadata is the float model's (tags, front end, feature parameters, recipe), plus
`qbsd.quantisation` (JSON: the float model's id, the operators, formats and the
calibration), and its summary says int8.

    python -m qbsd_cli.training.quantise FLOAT.onnx OUTPUT.onnx [--corpus DIR] [--files 40]

or `qbsd train ... --int8-convolutions`, which quantises the model it has just trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..display import shown_path, shown_reason
from ..errors import QbsdError
from ..settings import SEGMENT_SECONDS


@dataclass(frozen=True)
class CalibrationSettings:
    """Which music sets the int8 activation ranges: `files` files spread evenly over the
    corpus, `segments` 30 s segments of each, chosen as `qbsd tag` chooses them (one: the
    middle of the file; more: spread from its start to its end)."""

    files: int = 40
    segments: int = 1


#: the operators put in int8 (see the module docstring for why only these)
QUANTISED_OPERATORS = ("Conv",)


def corpus_calibration_paths(corpus: str, settings: CalibrationSettings) -> list[str]:
    """`settings.files` decodable files of the corpus manifest in `corpus` (its folder or
    the manifest itself), evenly spaced over the manifest's order, so that every package
    of a sorted manifest has its share."""
    from .teacher import corpus_paths

    try:
        paths = corpus_paths(corpus)
    except OSError:
        raise QbsdError(
            f"no corpus manifest in {corpus}: run `python -m qbsd_cli.training.corpus fetch` first"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise QbsdError(f"the corpus manifest in {corpus} is damaged ({error!r}): fetch the corpus again") from None
    if not paths:
        raise QbsdError(f"the corpus manifest in {corpus} lists no decodable music")
    count = min(settings.files, len(paths))
    chosen = np.linspace(0, len(paths) - 1, count).round().astype(int)
    return [paths[i] for i in sorted(set(chosen.tolist()))]


def calibration_feeds(
    model_path: Path, paths: Sequence[str], settings: CalibrationSettings, log: Callable[[str], object] = print
) -> list[dict[str, np.ndarray]]:
    """The float model's graph inputs for `paths`, one feed per analysed segment: its
    patches, with its song statistics where the graph takes them (a blended model)."""
    from ..errors import AudioError, TooShortError
    from ..model import TagModel

    model = TagModel(model_path)
    feeds: list[dict[str, np.ndarray]] = []
    for path in paths:
        try:
            for patches, statistics in model.network_inputs(path, max_segments=settings.segments):
                feed = {"patches": patches.astype(np.float32)}
                if statistics is not None:
                    feed["song_statistics"] = statistics.astype(np.float32)[None, :]
                feeds.append(feed)
        except (AudioError, TooShortError) as error:
            # corpus file names and decoder messages are untrusted text: through the one sanitiser
            log(f"calibration: skipped {shown_path(os.path.basename(path))} ({shown_reason(str(error))})")
    if not feeds:
        raise QbsdError("calibration: none of the files gave the model any input")
    return feeds


def quantised_model_id(float_model_id: str, recipe_name: str, model) -> str:
    """`qbsd-<recipe>-int8-<first 10 hex of sha256 of the float id and the quantised graph>`
    (the whole graph: its weights, ranges and operators; the metadata is not part of it)."""
    digest = hashlib.sha256(float_model_id.encode())
    digest.update(model.graph.SerializeToString())
    return f"qbsd-{recipe_name}-int8-{digest.hexdigest()[:10]}"


def _int8_weights(model) -> int:
    """How many of the graph's initialisers are int8 (the quantised weights)."""
    from onnx import TensorProto

    return sum(tensor.data_type == TensorProto.INT8 for tensor in model.graph.initializer)


def quantise_convolutions(
    float_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    calibration_paths: Sequence[str],
    settings: CalibrationSettings = CalibrationSettings(),
    calibration_note: str = "",
    log: Callable[[str], object] = print,
    operators: Sequence[str] | None = QUANTISED_OPERATORS,
) -> str:
    """Write to `output` the model at `float_path` with its convolutions in static QDQ int8,
    calibrated on `calibration_paths` (`calibration_note` says what they are, for the
    metadata); returns the new model id. `output` appears whole or not at all.
    `operators`: the operator types put in int8 (None: every one onnxruntime can; measured
    worse, benchmarks/quantisation.py compares them)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..model import DUPLICATE_COSINE_KEY, ORT_ERRORS_ONLY, read_metadata
    from ..settings import DEFAULT_DUPLICATE_COSINE
    from .export import write_onnx

    float_path, output = Path(float_path), Path(output)
    if output.is_dir():
        raise QbsdError(f"{output} is a folder: give the int8 model's file name")
    metadata = read_metadata(float_path)
    float_model_id = metadata.get("qbsd.model_id", "")
    if "qbsd.quantisation" in metadata:
        raise QbsdError(f"{float_path.name} is already quantised ({float_model_id}): give the float model")
    try:
        recipe_name = str(json.loads(metadata.get("qbsd.recipe", "{}")).get("name", "model"))
    except (ValueError, AttributeError):
        raise QbsdError(f"{float_path.name}: its qbsd.recipe metadata is not a qbsd recipe") from None
    log(f"calibration: network inputs of {len(calibration_paths)} files ...")
    feeds = calibration_feeds(float_path, calibration_paths, settings, log)

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(feeds)

        def get_next(self):
            return next(self.remaining, None)

    # the calibration sessions would warn, as every load of a blend does, that
    # song_statistics (an input with a default) is not constant-folded: intended (model.py)
    onnxruntime.set_default_logger_severity(ORT_ERRORS_ONLY)
    with tempfile.TemporaryDirectory(prefix="qbsd-int8-") as folder:
        prepared, quantised = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        try:
            quant_pre_process(str(float_path), str(prepared))
            quantize_static(
                str(prepared),
                str(quantised),
                Feeds(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                op_types_to_quantize=list(operators) if operators else None,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as error:  # onnxruntime's tools raise anything from a graph they cannot take
            raise QbsdError(f"{float_path.name}: onnxruntime could not quantise it ({error})") from error
        model = onnx.load(str(quantised))
    if not _int8_weights(model):
        raise QbsdError(
            f"{float_path.name}: nothing was quantised (no {', '.join(operators or ['quantisable operator'])} "
            "with weights in the graph)"
        )
    model_id = quantised_model_id(float_model_id, recipe_name, model)
    quantised_names = list(operators) if operators else ["every quantisable operator"]
    description = (
        f"{', '.join(quantised_names)} in static QDQ int8 (weights int8 per channel, activations uint8), "
        f"calibrated on {len(feeds)} segments of {len(calibration_paths)} files"
        + (f" ({calibration_note})" if calibration_note else "")
    )
    updated = {
        "qbsd.model_id": model_id,
        "qbsd.quantisation": json.dumps(
            {
                "float_model_id": float_model_id,
                "operators": quantised_names,
                "format": "QDQ",
                "weights": "int8, per channel",
                "activations": "uint8",
                "calibration": {
                    "files": len(calibration_paths),
                    "segments": len(feeds),
                    "segments_per_file": settings.segments,
                    "note": calibration_note,
                },
            }
        ),
        "qbsd.summary": metadata.get("qbsd.summary", recipe_name) + f"; int8: {description}",
        # a new model's vectors: unmeasured until benchmarks/duplicates.py measures them
        DUPLICATE_COSINE_KEY: f"{DEFAULT_DUPLICATE_COSINE}",
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    write_onnx(model, output, {**metadata, **updated})
    return model_id


def quantise_with_corpus(
    float_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    corpus: str,
    settings: CalibrationSettings = CalibrationSettings(),
    log: Callable[[str], object] = print,
) -> str:
    """`quantise_convolutions`, calibrated on the corpus (`corpus_calibration_paths`)."""
    paths = corpus_calibration_paths(corpus, settings)
    segments = (
        f"the middle {SEGMENT_SECONDS:g} s"
        if settings.segments == 1
        else f"{settings.segments} segments of {SEGMENT_SECONDS:g} s spread over each"
    )
    note = f"{segments} of {len(paths)} files spread evenly over the unlabelled corpus manifest, as qbsd tag chooses"
    return quantise_convolutions(float_path, output, paths, settings, note, log)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from .corpus import DEFAULT_CACHE

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the float ONNX model")
    parser.add_argument("output", type=Path, help="where to write the int8 model")
    parser.add_argument("--corpus", default=DEFAULT_CACHE, help="the corpus cache folder (or its manifest.json)")
    parser.add_argument("--files", type=int, default=CalibrationSettings.files, help="calibration files")
    parser.add_argument("--segments", type=int, default=CalibrationSettings.segments, help="30 s segments per file")
    arguments = parser.parse_args(argv)
    if not arguments.model.is_file():
        parser.error(f"no model file {arguments.model}")
    if arguments.output.is_dir():
        parser.error(f"{arguments.output} is a folder: give the int8 model's file name")
    if arguments.output.resolve() == arguments.model.resolve():
        parser.error("the output would replace the float model: give another file name")
    if arguments.files < 1 or arguments.segments < 1:
        parser.error("--files and --segments must be at least 1")
    settings = CalibrationSettings(files=arguments.files, segments=arguments.segments)
    try:
        model_id = quantise_with_corpus(arguments.model, arguments.output, arguments.corpus, settings)
    except QbsdError as error:  # a bad model file, no corpus, no usable calibration audio
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {arguments.output} ({arguments.output.stat().st_size / 1e6:.1f} MB), model id {model_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
