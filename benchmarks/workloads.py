"""Benchmark workloads, generated from the 4Q clips (never committed).

- library: songs of 3-5 minutes, each a concatenation of real 30 s clips, upsampled to
  44.1 kHz stereo and encoded as a music folder holds them: two thirds MP3 (constant
  192, 256 or 320 kbit/s, checked after writing), one third FLAC (16 bit).
- clips: the 800 clips themselves (22.05 kHz mono MP3), read where they are.
- long: one file of 60 minutes (44.1 kHz stereo MP3, 256 kbit/s), for memory.

Everything is seeded, so a cache folder can be reused between runs: a workload is
regenerated only when its manifest is missing or was made with other settings.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SOURCE_RATE = 22050
RATE = 44100
REPO = Path(__file__).resolve().parent.parent
#: The real clips the benchmarks read (../shared beside the repository).
CLIPS_DIR = REPO.parent / "shared" / "data" / "moods4q" / "audio"
#: What a benchmark's child processes run with: one core each, for per-core figures.
ONE_CORE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def environment() -> dict:
    """The environment for a measured `qbsd` process: this checkout first, no QBSD_*
    settings of the user, one core."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QBSD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, **ONE_CORE}


VERSION = 2  # bump when the generation changes, to invalidate caches

# (format, constant bitrate in kbit/s or None): the cycle of encodings over the library.
ENCODINGS = [("MP3", 192), ("MP3", 256), ("FLAC", None), ("MP3", 320), ("MP3", 192), ("FLAC", None)]
# libsndfile maps compression_level in 0..1 onto LAME's bitrate table for constant
# bitrate: these levels give exactly these rates at 44.1 kHz (checked in `_verify_mp3`).
MP3_LEVEL = {320: 0.0, 256: 0.2, 224: 0.3, 192: 0.4}


def clip_paths(clips_dir: Path) -> list[Path]:
    return sorted(Path(clips_dir).glob("*.mp3"))


def _load_clip(path: Path) -> np.ndarray:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if rate != SOURCE_RATE:
        import soxr

        samples = soxr.resample(samples, rate, SOURCE_RATE).astype(np.float32)
    return samples


def _render(clips: list[Path], seconds: float) -> np.ndarray:
    """Clips end to end, cut to `seconds`, as 44.1 kHz stereo float32 (n, 2)."""
    import soxr

    mono = np.concatenate([_load_clip(path) for path in clips])[: int(seconds * SOURCE_RATE)]
    fade = int(2.0 * SOURCE_RATE)
    mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    mono = soxr.resample(mono, SOURCE_RATE, RATE, quality="HQ").astype(np.float32)
    # A real stereo image (channels correlated, not identical): the right channel is
    # delayed by 3 ms and a little quieter.
    delay = int(0.003 * RATE)
    right = np.concatenate([np.zeros(delay, np.float32), mono[:-delay]]) * 0.9
    stereo = np.stack([mono, right], axis=1)
    peak = float(np.max(np.abs(stereo))) or 1.0
    return stereo * (0.9 / peak)


def _bitrate_from_info(path: Path) -> int | None:
    import soundfile

    for line in soundfile.info(str(path)).extra_info.splitlines():
        if line.strip().startswith("bitrate") and "mode" not in line:
            return int(line.split(":")[1].split()[0])
    return None


def _write(stereo: np.ndarray, path: Path, fmt: str, kbps: int | None) -> dict:
    import soundfile

    temporary = path.with_name(path.name + ".part")
    if fmt == "MP3":
        soundfile.write(
            str(temporary),
            stereo,
            RATE,
            format="MP3",
            subtype="MPEG_LAYER_III",
            bitrate_mode="CONSTANT",
            compression_level=MP3_LEVEL[kbps],
        )
    else:
        soundfile.write(str(temporary), stereo, RATE, format="FLAC", subtype="PCM_16")
    os.replace(temporary, path)
    info = soundfile.info(str(path))
    record = {
        "path": str(path),
        "format": fmt,
        "seconds": info.frames / info.samplerate,
        "rate": info.samplerate,
        "channels": info.channels,
        "bytes": path.stat().st_size,
    }
    record["kbps_average"] = round(record["bytes"] * 8 / record["seconds"] / 1000, 1)
    if fmt == "MP3":
        header = _bitrate_from_info(path)
        if header != kbps or not (0.97 * kbps <= record["kbps_average"] <= 1.03 * kbps + 2):
            raise RuntimeError(
                f"{path}: asked for {kbps} kbit/s, header says {header}, size says {record['kbps_average']}"
            )
        record["kbps"] = header
    if info.samplerate != RATE or info.channels != 2:
        raise RuntimeError(f"{path}: {info.samplerate} Hz, {info.channels} channels")
    return record


def _make_song(task: tuple) -> dict:
    clips, seconds, path, fmt, kbps = task
    return _write(_render([Path(c) for c in clips], seconds), Path(path), fmt, kbps)


def _cached(folder: Path, settings: dict) -> list[dict] | None:
    manifest = folder / "manifest.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("settings") == settings and all(Path(r["path"]).exists() for r in saved["files"]):
            return saved["files"]
    return None


def generate(groups: list[tuple[Path, dict, list[tuple]]], jobs: int, log) -> list[list[dict]]:
    """Make every group's files (folder, settings, tasks) unless its manifest matches;
    all missing files are made in one pool of `jobs` processes, longest first."""
    results: list[list[dict] | None] = []
    pending = []  # (group, position, task)
    for number, (folder, settings, tasks) in enumerate(groups):
        files = _cached(folder, settings)
        results.append(files)
        if files is not None:
            log(f"reusing {folder} ({len(files)} files)")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        pending += [(number, position, task) for position, task in enumerate(tasks)]
    if pending:
        seconds = sum(task[1] for _, _, task in pending)
        log(f"generating {len(pending)} file(s), {seconds / 3600:.1f} h of audio, with {jobs} process(es) ...")
        pending.sort(key=lambda item: -item[2][1])
        with ProcessPoolExecutor(max(1, jobs)) as pool:
            made = list(pool.map(_make_song, [task for _, _, task in pending]))
        by_group: dict[int, dict[int, dict]] = {}
        for (number, position, _task), record in zip(pending, made):
            by_group.setdefault(number, {})[position] = record
        for number, records in by_group.items():
            folder, settings, tasks = groups[number]
            files = [records[i] for i in range(len(tasks))]
            (folder / "manifest.json").write_text(json.dumps({"settings": settings, "files": files}, indent=1))
            results[number] = files
    return results


def library_group(root: Path, clips_dir: Path, songs: int, seed: int) -> tuple[Path, dict, list[tuple]]:
    """`songs` songs of 180-300 s under root/library-..."""
    clips = clip_paths(clips_dir)
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(clips)))
    tasks = []
    folder = root / f"library-{songs}-{seed}"
    for i in range(songs):
        seconds = float(rng.uniform(180.0, 300.0))
        needed = int(np.ceil(seconds / 29.0)) + 1
        while len(order) < needed:
            order += list(rng.permutation(len(clips)))
        chosen, order = order[:needed], order[needed:]
        fmt, kbps = ENCODINGS[i % len(ENCODINGS)]
        name = f"song{i:04d}-{kbps}k.mp3" if fmt == "MP3" else f"song{i:04d}.flac"
        tasks.append(([str(clips[c]) for c in chosen], seconds, str(folder / name), fmt, kbps))
    settings = {"version": VERSION, "songs": songs, "seed": seed, "clips": len(clips)}
    return folder, settings, tasks


def long_group(root: Path, clips_dir: Path, minutes: float, seed: int) -> tuple[Path, dict, list[tuple]]:
    """One MP3 of `minutes` minutes (256 kbit/s, 44.1 kHz stereo)."""
    clips = clip_paths(clips_dir)
    rng = np.random.default_rng(seed + 1)
    seconds = minutes * 60.0
    needed = int(np.ceil(seconds / 29.0)) + 1
    chosen = [str(clips[i % len(clips)]) for i in rng.permutation(max(needed, len(clips)))[:needed]]
    folder = root / f"long-{minutes:g}min-{seed}"
    task = (chosen, seconds, str(folder / f"long-{minutes:g}min-256k.mp3"), "MP3", 256)
    settings = {"version": VERSION, "minutes": minutes, "seed": seed, "clips": len(clips)}
    return folder, settings, [task]
