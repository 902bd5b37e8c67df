"""The figures docs/SCALE.md extrapolates to ten million tracks, measured on this machine.

    python benchmarks/scale.py [--songs 6] [--sizes 100000,1000000] [--cache DIR] [--output benchmarks/SCALE.md]

1. Tagging cost per track: `qbsd tag --jobs 1 --model M [--full]` on the same `--songs`
   songs of the benchmarks' realistic library (3-5 min, MP3 and FLAC, 44.1 kHz stereo),
   for the fast and the accurate model; the whole process timed (start-up and model load
   included, so a few songs slightly understate the speed), once each.
2. The single index at `--sizes` songs, with synthetic vectors made from real ones (the
   generator of benchmarks/run.py, fed with the fast model's vectors of 200 real clips):
   `put_song` for every song (with artist, album, title and length) in one transaction,
   but the last 4,096, which go through `qbsd index`'s own writer (`indexing._store_batch`,
   a commit per 16 songs) to time the one writer's cost per song; then `IndexStore.rebuild_annoy` (the
   step at the end of every `qbsd index`) in a process of its own, whose wall time and
   peak resident memory are measured; bytes on disk of SQLite and Annoy; `qbsd similar
   CLIP.mp3` (a clip not in the index: it is analysed) and `qbsd search calm piano` as whole
   processes (median of 3 each) with their peak memory; and one Annoy query
   in-process (median over 200 queries).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import workloads  # noqa: E402
from run import folder_bytes, synthetic_vectors  # noqa: E402
from workloads import CLIPS_DIR, environment, log  # noqa: E402

from qbsd_cli.indexing import BATCH_FILES  # noqa: E402

#: The words of the timed `qbsd search` (a words-only search scores every song).
SEARCH_WORDS = ("calm", "piano")
#: Songs written through the index's batch commit at each size (the writer-cost figure).
WRITER_SONGS = 4096


def synthetic_path(i: int) -> str:
    return f"/music/synthetic/artist{i // 1000:04d}/album{i // 10 % 100:02d}/song{i:07d}.mp3"


def synthetic_info(i: int):
    """Names as long as a real library's, so that the bytes per song include them."""
    from qbsd_cli.songinfo import SongInfo

    return SongInfo(f"Artist number {i // 1000}", f"Album number {i // 10}", f"Song title number {i}", 240.0, True)


def fill(store, vectors: np.ndarray, first: int) -> float:
    """put_song every vector, with its names, in one transaction; seconds taken."""
    started = time.perf_counter()
    with store.writer_lock():
        with store.transaction():
            for i, vector in enumerate(vectors, first):
                store.put_song(
                    synthetic_path(i), 5_000_000 + i, 1_700_000_000_000_000_000 + i, 240.0, vector, synthetic_info(i)
                )
    return time.perf_counter() - started


def writer_cost(store, vectors: np.ndarray, first: int) -> float:
    """Seconds per song of `qbsd index`'s writer: indexing._store_batch (names completed
    from the folders, put_song, one commit per indexing.BATCH_FILES songs), on analyses
    as they come back from the workers (vector, duration and the file's own tags)."""
    from qbsd_cli import indexing
    from qbsd_cli.analysis import Analysis
    from qbsd_cli.songinfo import SongInfo

    info = os.stat(__file__)
    analyses = [
        Analysis(synthetic_path(i), vector, 240.0, tags=SongInfo(None, None, f"Song title number {i}", 240.0))
        for i, vector in enumerate(vectors, first)
    ]
    summary, reporter = indexing.IndexSummary(), indexing.Reporter()
    started = time.perf_counter()
    with store.writer_lock():
        for start in range(0, len(analyses), indexing.BATCH_FILES):
            batch = [(analysis, info, False) for analysis in analyses[start : start + indexing.BATCH_FILES]]
            indexing._store_batch(store, batch, summary, reporter, ["/music/synthetic"])
    return (time.perf_counter() - started) / len(analyses)


def measured(command: list[str], scratch: Path, **kwargs) -> tuple[dict, subprocess.CompletedProcess]:
    """Wall s, CPU s and peak RSS MB of `command` (through measure.py, see run.py), and its output."""
    out = scratch / "measured.json"
    completed = subprocess.run(
        [sys.executable, str(HERE / "measure.py"), str(out), *command],
        capture_output=True,
        text=True,
        env=environment(),
        **kwargs,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:5])} ... exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return json.loads(out.read_text()), completed


def bench_tagging(songs: list[str], scratch: Path) -> dict:
    found = {}
    for model in ("fast", "accurate"):
        for full in (False, True):
            extra = ["--full"] if full else []
            command = [sys.executable, "-m", "qbsd_cli", "tag", "--jobs", "1", "--model", model, *extra, *songs]
            figures, completed = measured(command, scratch)
            analysed = sum(json.loads(line)["duration"] for line in completed.stdout.splitlines())
            name = f"{model}{' --full' if full else ''}"
            found[name] = {
                "wall": figures["wall"],
                "analysed_seconds": analysed,
                "realtime_per_core": analysed / figures["wall"],
                "core_seconds_per_track": figures["wall"] / len(songs),
            }
            log(
                f"tag {name}: {figures['wall']:.1f} s for {analysed:.0f} s analysed ({analysed / figures['wall']:.0f}x)"
            )
    return found


REBUILD = """
import sys, time
from qbsd_cli.store import IndexStore
with IndexStore(sys.argv[1], create=False) as store:
    with store.writer_lock():
        started = time.perf_counter()
        store.rebuild_annoy()
        print(time.perf_counter() - started)
"""


def bench_index(sizes: list[int], clips: list[str], scratch: Path) -> dict:
    from qbsd_cli.store import IndexStore

    clip_index = scratch / "clips-index"
    subprocess.run(
        [sys.executable, "-m", "qbsd_cli", "index", *clips, "--jobs", "2", "--index", str(clip_index)],
        check=True,
        capture_output=True,
        env=environment(),
    )
    with IndexStore(clip_index, create=False) as store:
        _paths, real = store.all_vectors()
        model_id, tags = store.model_id, store.tags
    rng = np.random.default_rng(7)
    queries = real[rng.choice(len(real), size=min(200, len(real)), replace=False)]
    folder = scratch / "synthetic-index"
    with IndexStore(folder, create=True) as store:
        store.bind_model(model_id, tags)
    query_clip = clips[0]
    have, found = 0, {}
    for size in sizes:
        log(f"index: {size:,} songs: put_song x {size - have:,}")
        with IndexStore(folder, create=False) as store:
            put_seconds = fill(store, synthetic_vectors(real, size - have - WRITER_SONGS, rng), have)
            per_song_commit = writer_cost(store, synthetic_vectors(real, WRITER_SONGS, rng), size - WRITER_SONGS)
        log(f"  writer: {1000 * per_song_commit:.3f} ms a song in batches of 16")
        have = size
        figures, completed = measured([sys.executable, "-c", REBUILD, str(folder)], scratch)
        build_seconds = float(completed.stdout.split()[-1])
        disk = folder_bytes(folder)
        log(f"  Annoy build {build_seconds:.1f} s, peak RSS {figures['maxrss_mb']:,.0f} MB; disk {disk}")
        similar = [
            measured([sys.executable, "-m", "qbsd_cli", "similar", query_clip, "--index", str(folder)], scratch)[0]
            for _ in range(4)
        ][1:]  # the first warms the page cache
        search = [
            measured([sys.executable, "-m", "qbsd_cli", "search", *SEARCH_WORDS, "--index", str(folder)], scratch)[0]
            for _ in range(3)
        ]
        with IndexStore(folder, create=False) as reader:
            reader.nearest(queries[0], 10)  # the forest loaded once, as in one process
            times = []
            for query in queries:
                started = time.perf_counter()
                reader.nearest(query, 10)
                times.append(time.perf_counter() - started)
        found[size] = {
            "n_tags": len(tags),
            "put_seconds": put_seconds,
            "writer_ms_per_song": 1000 * per_song_commit,
            "build_seconds": build_seconds,
            "build_peak_rss_mb": figures["maxrss_mb"],
            "sqlite_bytes": disk["sqlite"],
            "annoy_bytes": disk["annoy"],
            "similar_wall_median": statistics.median(run["wall"] for run in similar),
            "similar_peak_rss_mb": max(run["maxrss_mb"] for run in similar),
            "search_wall_median": statistics.median(run["wall"] for run in search),
            "search_peak_rss_mb": max(run["maxrss_mb"] for run in search),
            "annoy_query_ms": 1000 * statistics.median(times),
        }
        log(f"  {found[size]}")
    shutil.rmtree(folder)
    return found


def report(args, tagging: dict, index: dict, track_seconds: float, started: float, load_start: float) -> str:
    lines = [
        "# Figures for the ten-million-track plan (docs/SCALE.md)",
        "",
        f"Measured by `python benchmarks/scale.py --songs {args.songs} --sizes {args.sizes}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC (its docstring says how), "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores shared with other work, "
        f"load average {load_start:.2f} at the start and {os.getloadavg()[0]:.2f} at the end; "
        f"benchmark wall time {(time.monotonic() - started) / 60:.1f} min.",
        "",
        f"## Tagging, one core: {args.songs} songs of the library, {track_seconds / 60:.1f} min a song on average",
        "",
        "| model, analysis | wall s | analysed s | x realtime per core (analysed) | core-seconds a track |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, entry in tagging.items():
        lines.append(
            f"| {name} | {entry['wall']:.1f} | {entry['analysed_seconds']:.0f} | {entry['realtime_per_core']:,.0f}x "
            f"| {entry['core_seconds_per_track']:.2f} |"
        )
    lines += [
        "",
        "## The single index, synthetic songs",
        "",
        f"put_song: the songs but the last {WRITER_SONGS:,}, with names, in one transaction. Writer: the last "
        f"{WRITER_SONGS:,} through `indexing._store_batch`, committed {BATCH_FILES} at a time as `qbsd index` does.",
        "",
        "| songs | tags | put_song (one transaction) s | writer ms/song (batches of 16) | Annoy build s "
        "| build peak RSS MB | SQLite bytes/song "
        "| Annoy bytes/song | `qbsd similar` wall s (median of 3) | `similar` peak RSS MB "
        f"| `qbsd search {' '.join(SEARCH_WORDS)}` wall s (median of 3) | `search` peak RSS MB | Annoy query ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, entry in index.items():
        lines.append(
            f"| {size:,} | {entry['n_tags']} | {entry['put_seconds']:.1f} | {entry['writer_ms_per_song']:.3f} "
            f"| {entry['build_seconds']:.1f} "
            f"| {entry['build_peak_rss_mb']:,.0f} | {entry['sqlite_bytes'] / size:,.0f} | {entry['annoy_bytes'] / size:,.0f} "
            f"| {entry['similar_wall_median']:.2f} | {entry['similar_peak_rss_mb']:,.0f} "
            f"| {entry['search_wall_median']:.2f} | {entry['search_peak_rss_mb']:,.0f} | {entry['annoy_query_ms']:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--cache", type=Path, help="keep the generated library here, to reuse it")
    parser.add_argument("--output", type=Path, default=HERE / "SCALE.md")
    args = parser.parse_args()
    started, load_start = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="qbsd-scale-bench-"))
    try:
        group = workloads.library_group(args.cache or scratch / "audio", CLIPS_DIR, args.songs, seed=1)
        [records] = workloads.generate([group], jobs=len(os.sched_getaffinity(0)), log=log)
        songs = [record["path"] for record in records]
        track_seconds = statistics.mean(record["seconds"] for record in records)
        tagging = bench_tagging(songs, scratch)
        clips = sorted(str(path) for path in CLIPS_DIR.glob("*.mp3"))[:200]
        index = bench_index([int(size) for size in args.sizes.split(",")], clips, scratch)
        data = {"tagging": tagging, "index": index, "track_seconds": track_seconds}
        text = report(args, tagging, index, track_seconds, started, load_start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
