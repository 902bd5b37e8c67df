"""How alike are two encodings of one recording, against two different recordings? The
measurement behind the duplicate threshold of `qbsd similar`, `search`, `path` and
`qbsd index --duplicates` (each model's `qbsd.duplicate_cosine` metadata, model.duplicate_threshold).

    python benchmarks/duplicates.py [--models fast,accurate] [--clips 60] [--others 800] [--output benchmarks/DUPLICATES.md]

A subset of the 800 4Q clips (every 800/N-th clip in name order) is decoded and written
again with soundfile: MP3 at three bit rates (libsndfile's compression levels 0, 0.5 and
0.9: about 160, 80 and 24 kbit/s on these mono 22,050 Hz clips), FLAC, Ogg Vorbis, FLAC
resampled to 16,000 Hz and Ogg resampled to 44,100 Hz. Each file is analysed as `qbsd
index` does (TagModel.analyse: at most four 30 s segments). "Same" is the cosine between
a clip and each of its re-encodes; "different" is the cosine between two different clips
(every pair among the first `--others` clips in name order), and "nearest different" is,
for each clip of the subset, its highest cosine to any other of those clips (the pair a
threshold would wrongly merge first). Vectors are cached beside the output, so a rerun
only reports.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli.audio import resample  # noqa: E402
from qbsd_cli.model import TagModel  # noqa: E402

CLIPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "moods4q" / "audio"
QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)

#: name -> (soundfile format, write options, sample rate or None for the clip's own)
VARIANTS = {
    "mp3-160k": ("MP3", {"compression_level": 0.0, "bitrate_mode": "CONSTANT"}, None),
    "mp3-80k": ("MP3", {"compression_level": 0.5, "bitrate_mode": "CONSTANT"}, None),
    "mp3-24k": ("MP3", {"compression_level": 0.9, "bitrate_mode": "CONSTANT"}, None),
    "flac": ("FLAC", {}, None),
    "ogg": ("OGG", {}, None),
    "flac-16khz": ("FLAC", {}, 16000),
    "ogg-44khz": ("OGG", {}, 44100),
}
EXTENSIONS = {"MP3": ".mp3", "FLAC": ".flac", "OGG": ".ogg"}


def write_variants(clip: Path, folder: Path) -> dict[str, Path]:
    """The clip re-encoded in every VARIANTS form, under `folder`."""
    samples, rate = soundfile.read(str(clip), dtype="float32")
    written = {}
    for name, (container, options, new_rate) in VARIANTS.items():
        data, target_rate = samples, rate
        if new_rate:
            mono = samples if samples.ndim == 1 else samples.mean(axis=1)
            data, target_rate = resample(mono, rate, new_rate), new_rate
        target = folder / f"{clip.stem}.{name}{EXTENSIONS[container]}"
        soundfile.write(str(target), data, target_rate, format=container, **options)
        written[name] = target
    return written


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def quantile_row(label: str, values: np.ndarray) -> str:
    cells = " | ".join(f"{q:.4f}" for q in np.quantile(values, QUANTILES))
    return f"| {label} | {len(values)} | {cells} |"


def measure(model_name: str, subset: list[Path], others: list[Path], cache: Path) -> dict:
    """Vectors of the subset's re-encodes and of `others`, cached in `cache` (.npz) for
    the model's id (a retrained model is measured afresh)."""
    model = TagModel(model_name)
    if cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["model_id"]) == model.model_id:
            return {key: stored[key] for key in stored.files}
    started = time.monotonic()
    other_vectors = np.stack([model.analyse(str(clip)).vector for clip in others])
    variant_vectors = np.zeros((len(subset), len(VARIANTS), len(model.tags)), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for row, clip in enumerate(subset):
            for column, path in enumerate(write_variants(clip, Path(folder)).values()):
                variant_vectors[row, column] = model.analyse(str(path)).vector
                path.unlink()
    result = {
        "others": other_vectors,
        "variants": variant_vectors,
        "subset_rows": np.array([others.index(clip) for clip in subset]),
        "model_id": np.array(model.model_id),
        "seconds": np.array(time.monotonic() - started),
    }
    np.savez(cache, **result)
    return result


def report(model_name: str, measured: dict) -> tuple[list[str], dict]:
    others = unit(measured["others"])
    variants = unit(measured["variants"])
    rows = measured["subset_rows"]
    originals = others[rows]
    same = np.einsum("cvd,cd->cv", variants, originals)  # (clips, variants)
    similarity = others @ others.T
    upper = similarity[np.triu_indices(len(others), k=1)]
    masked = similarity.copy()
    np.fill_diagonal(masked, -np.inf)
    nearest_different = masked[rows].max(axis=1)
    lines = [
        f"### {model_name} (`{measured['model_id']}`)",
        "",
        "| cosine | n | min | 1% | 5% | median | 95% | 99% | max |",
        "|---|---|---|---|---|---|---|---|---|",
        quantile_row("same clip, any re-encode", same.ravel()),
    ]
    for column, name in enumerate(VARIANTS):
        lines.append(quantile_row(f"same clip, {name}", same[:, column]))
    lines += [
        quantile_row("different clips, every pair", upper),
        quantile_row("different clips, each subset clip's nearest", nearest_different),
        "",
    ]
    figures = {
        "same_min": float(same.min()),
        "same_1pct": float(np.quantile(same, 0.01)),
        "different_max": float(upper.max()),
        "nearest_99pct": float(np.quantile(nearest_different, 0.99)),
        "pairs_over": lambda threshold: (int((upper >= threshold).sum()), len(upper)),
        "same_under": lambda threshold: (int((same < threshold).sum()), same.size),
    }
    return lines, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fast", help="comma-separated shipped model names or ONNX files")
    parser.add_argument("--clips", type=int, default=60, help="clips re-encoded (spread over the 800)")
    parser.add_argument("--others", type=int, default=800, help="clips compared pairwise (first N in name order)")
    parser.add_argument("--thresholds", default="", help="model=cosine,... to report the error counts of")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "DUPLICATES.md")
    options = parser.parse_args()
    every = sorted(CLIPS.glob("*.mp3"))
    others = every[: options.others]
    subset = others[:: max(1, len(others) // options.clips)][: options.clips]
    chosen = dict(pair.split("=") for pair in options.thresholds.split(",") if pair)
    lines = [
        "# Duplicates: re-encodes of one clip against different clips",
        "",
        f"Measured by `python benchmarks/duplicates.py --models {options.models} --clips {options.clips} "
        f"--others {options.others}` (its docstring says how): {len(subset)} clips re-encoded "
        f"{len(VARIANTS)} ways, against every pair of {len(others)} clips.",
        "",
    ]
    for model_name in options.models.split(","):
        cache = options.output.with_name(f"duplicates-{Path(model_name).stem}-{len(subset)}-{len(others)}.npz")
        measured = measure(model_name, subset, others, cache)
        table, figures = report(model_name, measured)
        lines += table
        print("\n".join(table))
        print(f"analysis took {float(measured['seconds']):.0f} s")
        if model_name in chosen:
            threshold = float(chosen[model_name])
            over, pairs = figures["pairs_over"](threshold)
            under, total = figures["same_under"](threshold)
            lines += [
                f"At the threshold {threshold}: {under} of {total} re-encodes fall below it (missed), "
                f"{over} of {pairs} pairs of different clips reach it (wrongly merged).",
                "",
            ]
            print(lines[-2])
    options.output.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
