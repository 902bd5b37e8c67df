"""Int8 quantisation of the shipped models (issue 20, item 4): what it buys and what it moves.

    python benchmarks/quantisation.py [--models FLOAT.onnx,accurate] [--clips 20] [--rounds 3] [--output benchmarks/QUANTISATION.md]

For each model and each way of quantising it (onnxruntime's dynamic int8 of every MatMul and
Conv; static QDQ int8, per-channel weights, of every quantisable operator or of the
convolutions only, by the export path's quantiser (qbsd_cli/training/quantise.py),
calibrated on the network inputs of 40 real clips that the comparison does not use), the
same real clips are analysed by `TagModel` with the float model and the quantised one in
alternating rounds in this process. Reported: the network's own seconds
(`TagModel.patch_outputs` summed over the clips; decoding and the front end are the same
code for both and not counted) as the median ratio float / int8, the largest change of any
tag score, the smallest cosine between a clip's float and int8 song vectors, and the share
of clips whose nearest other clip stays the same. Needs the train extra (the `onnx`
package); the quantised files are written to a temporary folder and deleted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLIPS = REPO.parent / "shared" / "data" / "moods4q" / "audio"

from qbsd_cli.model import TagModel, read_metadata, resolve_model_path  # noqa: E402

#: calibration clips: sorted positions 100..139, apart from the compared first --clips
CALIBRATION = slice(100, 140)


def quantised(model_path: Path, way: str, calibration: list[str], folder: Path) -> Path:
    """`model_path` quantised one `way` ("dynamic", "static" or "static-conv") into `folder`;
    the static ways by the export path's own quantiser (qbsd_cli/training/quantise.py),
    calibrated on the network inputs of the `calibration` clips."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qbsd_cli.training.quantise import quantise_convolutions

    target = folder / f"{model_path.stem}.{way}.onnx"
    if way == "dynamic":
        quantize_dynamic(str(model_path), str(target), weight_type=QuantType.QInt8)
        return target
    operators = ("Conv",) if way == "static-conv" else None
    quantise_convolutions(model_path, target, calibration, log=lambda _: None, operators=operators)
    return target


def side_by_side(float_path: Path, int8_path: Path, paths: list[str], rounds: int) -> dict:
    """Network seconds of both in alternating rounds, and how far the int8 vectors moved."""
    models = {"float": TagModel(float_path), "int8": TagModel(int8_path)}
    seconds: dict[str, list[float]] = {"float": [], "int8": []}
    vectors: dict[str, np.ndarray] = {}
    patch_outputs = TagModel.patch_outputs
    spent = [0.0]

    def timed(self, patches):
        started = time.perf_counter()
        result = patch_outputs(self, patches)
        spent[0] += time.perf_counter() - started
        return result

    TagModel.patch_outputs = timed
    try:
        for round_ in range(rounds):
            for name in ("float", "int8") if round_ % 2 == 0 else ("int8", "float"):
                spent[0] = 0.0
                vectors[name] = np.stack([models[name].analyse(path).vector for path in paths])
                seconds[name].append(spent[0])
    finally:
        TagModel.patch_outputs = patch_outputs
    a, b = vectors["float"], vectors["int8"]
    cosines = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "ratio": statistics.median(f / q for f, q in zip(seconds["float"], seconds["int8"])),
        "float_seconds": statistics.median(seconds["float"]),
        "largest_change": float(np.abs(a - b).max()),
        "smallest_cosine": float(cosines.min()),
        "same_nearest": float((_nearest(a) == _nearest(b)).mean()),
    }


def _nearest(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="accurate", help="comma-separated float model names or files (the shipped fast one is int8)"
    )
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "QUANTISATION.md")
    args = parser.parse_args()
    clips = sorted(str(p) for p in CLIPS.rglob("*.mp3"))
    if len(clips) < CALIBRATION.stop:
        sys.exit(f"needs the 4Q clips in {CLIPS}")
    compared, calibration = clips[: args.clips], clips[CALIBRATION]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            path = resolve_model_path(name)
            if "qbsd.quantisation" in read_metadata(path):
                sys.exit(f"{name} is already quantised: give its float model's file")
            for way in ("dynamic", "static", "static-conv"):
                result = side_by_side(path, quantised(path, way, calibration, Path(folder)), compared, args.rounds)
                rows.append((name, way, result))
                print(name, way, {k: round(v, 4) for k, v in result.items()}, flush=True)
    lines = [
        "# Int8 quantisation of the shipped models",
        "",
        f"Measured by `python benchmarks/quantisation.py --models {args.models} --clips {args.clips} "
        f"--rounds {args.rounds}` (its docstring says how): the network alone, {args.clips} real clips, "
        "float and int8 alternating in one process on one core.",
        "",
        "| model | int8 | network speed, float / int8 (median of rounds) | float network seconds | "
        "largest tag-score change | smallest song-vector cosine | same nearest clip |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, way, r in rows:
        lines.append(
            f"| {name} | {way} | {r['ratio']:.2f}x | {r['float_seconds']:.2f} | {r['largest_change']:.3f} | "
            f"{r['smallest_cosine']:.4f} | {r['same_nearest']:.2f} |"
        )
    args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
