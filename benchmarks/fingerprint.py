"""Duplicates only when the audio agrees: vector cosine and audio-fingerprint bit error rate
(qbsd_cli/fingerprint.py) of re-encodes of one clip, against different clips of one artist
that carry identical tags, and the false merges / missed duplicates of the old rule (vector
threshold, or the same tagged artist and title with lengths within 2 s) against the new one
(ranking.same_recording: vector threshold, or fingerprints that agree for a candidate).

    nice -n 10 python benchmarks/fingerprint.py [--models fast,accurate] [--clips 60] [--others 300]

Re-encodes (written with soundfile, as benchmarks/duplicates.py does) of `--clips` clips
spread over the 800 4Q clips: MP3 at 64 kbit/s (libsndfile compression level 0.6 on these
mono 22,050 Hz clips) and at 24 kbit/s (0.9), Ogg Vorbis, FLAC, Ogg at 44.1 kHz, FLAC with
300 ms of silence added at the start, and FLAC with its first 300 ms cut. Each keeps its
clip's tags. Different clips of one artist: every pair of clips by the same artist in
metadata.csv (the 800), whose decoded lengths differ by 2 s at most, all given identical
artist and title tags (a "package" whose every track is tagged alike). Every pair among the
first `--others` clips gives the fingerprint's distribution for different recordings in
general. Each file is analysed as `qbsd index` does (TagModel.analyse); results are cached
beside the output (.npz), so a rerun only reports. The cost of the fingerprint (computed
from the log-mel the first segment already has) is timed against the whole analysis.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qbsd_cli import fingerprint  # noqa: E402
from qbsd_cli.audio import decode_segments, resample  # noqa: E402
from qbsd_cli.model import (
    TagModel,  # noqa: E402
    duplicate_threshold,  # noqa: E402
)
from qbsd_cli.ranking import CANDIDATE_COSINE, same_name, same_recording  # noqa: E402
from qbsd_cli.settings import SEGMENT_SECONDS  # noqa: E402
from qbsd_cli.songinfo import SongInfo  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "moods4q"
CLIPS = DATA / "audio"
QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
SILENCE_SECONDS = 0.3

#: name -> (soundfile format, write options, sample rate or None, seconds added (+) or cut (-) at the start)
VARIANTS = {
    "mp3-64k": ("MP3", {"compression_level": 0.6, "bitrate_mode": "CONSTANT"}, None, 0.0),
    "mp3-24k": ("MP3", {"compression_level": 0.9, "bitrate_mode": "CONSTANT"}, None, 0.0),
    "ogg": ("OGG", {}, None, 0.0),
    "flac": ("FLAC", {}, None, 0.0),
    "ogg-44khz": ("OGG", {}, 44100, 0.0),
    "flac+300ms": ("FLAC", {}, None, SILENCE_SECONDS),
    "flac-300ms": ("FLAC", {}, None, -SILENCE_SECONDS),
}
EXTENSIONS = {"MP3": ".mp3", "FLAC": ".flac", "OGG": ".ogg"}


def write_variant(samples: np.ndarray, rate: int, name: str, target: Path) -> Path:
    container, options, new_rate, shift = VARIANTS[name]
    data = samples if samples.ndim == 1 else samples.mean(axis=1)
    if shift > 0:
        data = np.concatenate([np.zeros(int(round(shift * rate)), dtype=np.float32), data])
    elif shift < 0:
        data = data[int(round(-shift * rate)) :]
    target_rate = rate
    if new_rate:
        data, target_rate = resample(np.ascontiguousarray(data, dtype=np.float32), rate, new_rate), new_rate
    path = target.with_suffix(EXTENSIONS[container])
    soundfile.write(str(path), data, target_rate, format=container, **options)
    return path


def artists() -> dict[str, list[str]]:
    """Song stem -> artist for the clips present, from metadata.csv (latin-1)."""
    present = {path.stem for path in CLIPS.glob("*.mp3")}
    with open(DATA / "metadata.csv", encoding="latin-1", newline="") as handle:
        return {row["Song"]: row["Artist"] for row in csv.DictReader(handle) if row["Song"] in present}


def _pack(prints: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    data = b"".join(p or b"" for p in prints)
    lengths = np.array([len(p) if p else 0 for p in prints], dtype=np.int64)
    return np.frombuffer(data, dtype=np.uint8).copy(), lengths


def _unpack(data: np.ndarray, lengths: np.ndarray) -> list[bytes | None]:
    out, start = [], 0
    raw = data.tobytes()
    for length in lengths.tolist():
        out.append(raw[start : start + length] if length else None)
        start += length
    return out


def measure(model_name: str, files: list[Path], subset: list[Path], cache: Path) -> dict:
    model = TagModel(model_name)
    if cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["model_id"]) == model.model_id:
            result = {key: stored[key] for key in stored.files}
            result["prints"] = _unpack(stored["print_data"], stored["print_lengths"])
            result["variant_prints"] = _unpack(stored["variant_print_data"], stored["variant_print_lengths"])
            return result
    started = time.monotonic()
    vectors, prints, lengths = [], [], []
    for path in files:
        song = model.analyse(str(path))
        vectors.append(song.vector)
        prints.append(song.fingerprint)
        lengths.append(soundfile.info(str(path)).duration)
    analysis_seconds = time.monotonic() - started
    variant_vectors = np.zeros((len(subset), len(VARIANTS), len(model.tags)), dtype=np.float32)
    variant_prints: list[bytes | None] = []
    variant_lengths = np.zeros((len(subset), len(VARIANTS)))
    with tempfile.TemporaryDirectory() as folder:
        for row, clip in enumerate(subset):
            samples, rate = soundfile.read(str(clip), dtype="float32")
            for column, name in enumerate(VARIANTS):
                path = write_variant(samples, rate, name, Path(folder) / f"{clip.stem}.{name}")
                song = model.analyse(str(path))
                variant_vectors[row, column] = song.vector
                variant_prints.append(song.fingerprint)
                variant_lengths[row, column] = soundfile.info(str(path)).duration
                path.unlink()
    print_data, print_lengths = _pack(prints)
    variant_print_data, variant_print_lengths = _pack(variant_prints)
    result = {
        "vectors": np.stack(vectors),
        "lengths": np.array(lengths),
        "variants": variant_vectors,
        "variant_lengths": variant_lengths,
        "print_data": print_data,
        "print_lengths": print_lengths,
        "variant_print_data": variant_print_data,
        "variant_print_lengths": variant_print_lengths,
        "model_id": np.array(model.model_id),
        "analysis_per_song": np.array(analysis_seconds / len(files)),
    }
    np.savez(cache, **result)
    result["prints"], result["variant_prints"] = prints, variant_prints
    return result


def cost(model_name: str, files: list[Path], count: int = 20) -> tuple[float, float]:
    """(seconds a song for TagModel.analyse, seconds a song for fingerprint.compute of the
    first segment's log-mel, as analyse takes it), timed afresh in this run on `count` files."""
    model = TagModel(model_name)
    front_end = model.front_end
    timed = files[:count]
    tick = time.perf_counter()
    for path in timed:
        model.analyse(str(path))
    analysis = (time.perf_counter() - tick) / len(timed)
    spent = 0.0
    for path in timed:
        segment = next(decode_segments(str(path), front_end.sample_rate, SEGMENT_SECONDS, 4))
        log_mel = front_end.patches_and_log_mel(segment.samples)[2]
        tick = time.perf_counter()
        fingerprint.compute(log_mel, front_end.sample_rate, front_end.hop_length)
        spent += time.perf_counter() - tick
    return analysis, spent / len(timed)


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def row(label: str, values) -> str:
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(values):
        return f"| {label} | 0 |" + " |" * len(QUANTILES)
    cells = " | ".join(f"{q:.4f}" for q in np.quantile(values, QUANTILES))
    return f"| {label} | {len(values)} | {cells} |"


def report(model_name: str, measured: dict, files: list[Path], subset: list[Path], artist_of: dict, others: int):
    threshold = duplicate_threshold(str(measured["model_id"]))
    analysis_seconds, fingerprint_seconds = cost(model_name, files)
    units = unit(measured["vectors"])
    variants = unit(measured["variants"])
    prints = measured["prints"]
    variant_prints = measured["variant_prints"]
    position = {path: i for i, path in enumerate(files)}
    package = SongInfo("One Artist", "One Album", "One Title", None, tagged=True)

    def tagged(seconds: float, print_: bytes | None) -> SongInfo:
        return SongInfo(package.artist, package.album, package.title, seconds, True, fingerprint=print_)

    def old_rule(cosine: float, a: SongInfo, b: SongInfo) -> bool:
        return cosine >= threshold or same_name(a, b)

    # re-encodes: (clip, variant) with the clip's tags (identical on both)
    same = {
        name: {"cosine": [], "ber": [], "vector": 0, "old": 0, "new": 0, "untagged": 0, "n": 0} for name in VARIANTS
    }
    for r, clip in enumerate(subset):
        i = position[clip]
        original = tagged(float(measured["lengths"][i]), prints[i])
        for c, name in enumerate(VARIANTS):
            copy = tagged(float(measured["variant_lengths"][r, c]), variant_prints[r * len(VARIANTS) + c])
            cosine = float(variants[r, c] @ units[i])
            entry = same[name]
            entry["cosine"].append(cosine)
            entry["ber"].append(fingerprint.bit_error_rate(original.fingerprint, copy.fingerprint))
            entry["n"] += 1
            entry["vector"] += cosine < threshold
            entry["old"] += not old_rule(cosine, original, copy)
            entry["new"] += not same_recording(cosine, threshold, original, copy)
            bare, bare_copy = SongInfo(fingerprint=original.fingerprint), SongInfo(fingerprint=copy.fingerprint)
            entry["untagged"] += not same_recording(cosine, threshold, bare, bare_copy)
    # different clips of one artist, identical tags, lengths within 2 s
    by_artist: dict[str, list[int]] = {}
    for path in files:
        if path.stem in artist_of:
            by_artist.setdefault(artist_of[path.stem], []).append(position[path])
    artist_pairs = [
        (a, b)
        for members in by_artist.values()
        for k, a in enumerate(members)
        for b in members[k + 1 :]
        if abs(measured["lengths"][a] - measured["lengths"][b]) <= 2.0
    ]
    artist_cos, artist_ber, old_false, new_false, new_false_pairs = [], [], 0, 0, []
    for a, b in artist_pairs:
        first, second = (
            tagged(float(measured["lengths"][a]), prints[a]),
            tagged(float(measured["lengths"][b]), prints[b]),
        )
        cosine = float(units[a] @ units[b])
        artist_cos.append(cosine)
        artist_ber.append(fingerprint.bit_error_rate(prints[a], prints[b]))
        old_false += old_rule(cosine, first, second)
        if same_recording(cosine, threshold, first, second):
            new_false += 1
            new_false_pairs.append((files[a].stem, files[b].stem, cosine, artist_ber[-1]))
    # every pair among the first `others` clips: the fingerprint of different recordings
    first_n = list(range(min(others, len(files))))
    every_ber, every_cos, every_old, every_new, agreeing = [], [], 0, 0, []
    tick = time.perf_counter()
    for k, a in enumerate(first_n):
        for b in first_n[k + 1 :]:
            every_ber.append(fingerprint.bit_error_rate(prints[a], prints[b]))
    compare_seconds = (time.perf_counter() - tick) / max(1, len(every_ber))
    pair = 0
    for k, a in enumerate(first_n):
        for b in first_n[k + 1 :]:
            cosine = float(units[a] @ units[b])
            every_cos.append(cosine)
            # as if every one of them carried the same tags
            first, second = (
                tagged(float(measured["lengths"][a]), prints[a]),
                tagged(float(measured["lengths"][b]), prints[b]),
            )
            every_old += old_rule(cosine, first, second)
            every_new += same_recording(cosine, threshold, first, second)
            if every_ber[pair] is not None and every_ber[pair] <= fingerprint.MATCH_BER:
                agreeing.append(f"{files[a].stem}/{files[b].stem} (cosine {cosine:.4f}, BER {every_ber[pair]:.3f})")
            pair += 1
    every_cos_array = np.array(every_cos)
    candidates = float(np.mean(every_cos_array >= CANDIDATE_COSINE))
    every_ber_array = np.array([v for v in every_ber if v is not None])
    lines = [
        f"### {model_name} (`{measured['model_id']}`), threshold {threshold}, candidates from cosine "
        f"{CANDIDATE_COSINE}, fingerprint match at BER <= {fingerprint.MATCH_BER}",
        "",
        "| cosine | n | min | 1% | 5% | median | 95% | 99% | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(f"same clip, {name}", same[name]["cosine"]) for name in VARIANTS]
    lines += [
        row("different clips of one artist (lengths within 2 s)", artist_cos),
        row(f"different clips, every pair of the first {len(first_n)}", every_cos),
        "",
        "| fingerprint bit error rate | n | min | 1% | 5% | median | 95% | 99% | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(f"same clip, {name}", same[name]["ber"]) for name in VARIANTS]
    lines += [
        row("different clips of one artist (lengths within 2 s)", artist_ber),
        row(f"different clips, every pair of the first {len(first_n)}", every_ber),
        "",
        "| re-encode | n | missed, vector alone | missed, old rule (tags identical) "
        "| missed, new rule (tags identical) | missed, new rule (no tags) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {same[name]['n']} | {same[name]['vector']} | {same[name]['old']} | {same[name]['new']} "
        f"| {same[name]['untagged']} |"
        for name in VARIANTS
    ]
    missing = sum(p is None for p in prints) + sum(p is None for p in variant_prints)
    lines += [
        "",
        f"Different clips of one artist with identical tags ({len(artist_pairs)} pairs of "
        f"{sum(len(members) > 1 for members in by_artist.values())} artists): the old rule merges {old_false}, "
        f"the new rule {new_false}"
        + (
            f" ({', '.join(f'{a}/{b} cos {c:.4f} BER {e}' for a, b, c, e in new_false_pairs)})"
            if new_false_pairs
            else ""
        )
        + f". Every pair of the first {len(first_n)} clips, as if all carried identical tags: the old rule "
        f"merges {every_old} of {len(every_cos)}, the new rule {every_new}; "
        f"{int((every_ber_array <= fingerprint.MATCH_BER).sum())} of {len(every_ber_array)} fingerprint pairs "
        f"are at BER <= {fingerprint.MATCH_BER} ({'; '.join(agreeing) or 'none'}); "
        f"{candidates:.1%} of the pairs are candidates by cosine (>= {CANDIDATE_COSINE}). "
        f"Files without a fingerprint: {missing}.",
        "",
        f"Cost (timed in this run, 20 clips): analysis {1000 * analysis_seconds:.0f} ms a song, the fingerprint "
        f"{1000 * fingerprint_seconds:.2f} ms of it ({fingerprint_seconds / analysis_seconds:.1%}); "
        f"{len(prints[0] or b'')} bytes a song; a comparison {1e6 * compare_seconds:.0f} µs.",
        "",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fast", help="comma-separated shipped model names or ONNX files")
    parser.add_argument("--clips", type=int, default=60, help="clips re-encoded (spread over the 800)")
    parser.add_argument("--others", type=int, default=300, help="clips compared pairwise (first N in name order)")
    parser.add_argument("--output", type=Path, default=None, help="write the report here (markdown)")
    options = parser.parse_args()
    every = sorted(CLIPS.glob("*.mp3"))
    subset = every[:: max(1, len(every) // options.clips)][: options.clips]
    artist_of = artists()
    counts: dict[str, int] = {}
    for artist in artist_of.values():
        counts[artist] = counts.get(artist, 0) + 1
    same_artist = [path for path in every if counts.get(artist_of.get(path.stem, ""), 0) >= 2]
    files = sorted(set(subset) | set(same_artist) | set(every[: options.others]))
    lines = [
        f"Measured by `nice -n 10 python benchmarks/fingerprint.py --models {options.models} "
        f"--clips {options.clips} --others {options.others}` (its docstring says how).",
        "",
    ]
    cache_folder = Path(__file__).resolve().parent
    for model_name in options.models.split(","):
        cache = cache_folder / f"fingerprint-{Path(model_name).stem}-{len(subset)}-{len(files)}.npz"
        measured = measure(model_name, files, subset, cache)
        lines += report(model_name, measured, files, subset, artist_of, options.others)
    text = "\n".join(lines)
    print(text)
    if options.output:
        options.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
