"""The cost of going through Dask: `qbsd index --cluster` against local `qbsd index --jobs`.

    python benchmarks/cluster.py [--songs 60] [--rounds 3] [--cache DIR] [--output benchmarks/CLUSTER.md]

On the benchmarks' realistic library (workloads.library_group: songs of 3-5 minutes, MP3
and FLAC at 44.1 kHz stereo), each round indexes it afresh (`--rebuild`) four ways, side
by side: locally with `--jobs 1` and `--jobs 2`, and with `--cluster` on a local Dask
scheduler with one and with two worker processes of one thread each (`dask scheduler`,
`dask worker --nworkers N --nthreads 1`, started once, as a user keeps a cluster
running). The report gives each variant's wall time (the whole `qbsd index` process) and,
within each round, the overhead ratio wall(cluster, N workers) / wall(local, --jobs N).
The workers keep their analysis process and model between runs, as a standing cluster
does; the local runs start theirs in every run, as `qbsd index` does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402
from workloads import CLIPS_DIR, environment, log  # noqa: E402


def dask_command(*args: str) -> list[str]:
    """`dask ARGS` with this interpreter, whichever `dask` is on PATH."""
    return [sys.executable, "-m", "dask", *args]


class StandingCluster:
    """`dask scheduler` and `dask worker --nworkers N --nthreads 1` as subprocesses."""

    def __init__(self, workers: int, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        address_file = folder / "scheduler.json"
        env = environment()
        self.processes = [
            subprocess.Popen(
                dask_command("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
                + ["--scheduler-file", str(address_file)],
                stdout=subprocess.DEVNULL,
                stderr=open(folder / "scheduler.log", "wb"),
                env=env,
                start_new_session=True,
            )
        ]
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one go, but give it a moment to be complete
        self.address = json.loads(address_file.read_text())["address"]
        self.processes.append(
            subprocess.Popen(
                dask_command("worker", self.address, "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"),
                stdout=subprocess.DEVNULL,
                stderr=open(folder / "workers.log", "wb"),
                env=env,
                start_new_session=True,
            )
        )
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        self.workers = workers

    def close(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, 15)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


SUMMARY = re.compile(r"added (\d+), updated \d+, removed \d+, failed (\d+),")


def index_run(library: Path, index: Path, extra: list[str]) -> float:
    """Wall seconds of `qbsd index --rebuild LIBRARY` (checked: every song added, none failed)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "qbsd_cli", "index", "--rebuild", str(library), "--index", str(index), *extra],
        capture_output=True,
        text=True,
        env=environment(),
    )
    wall = time.perf_counter() - started
    found = SUMMARY.search(completed.stderr)
    if completed.returncode != 0 or not found or found.group(2) != "0":
        raise RuntimeError(f"qbsd index {' '.join(extra)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="keep the generated library here, to reuse it")
    parser.add_argument("--output", type=Path, default=HERE / "CLUSTER.md")
    args = parser.parse_args()
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="qbsd-cluster-bench-"))
    audio_root = args.cache or scratch / "audio"
    clusters: dict[int, StandingCluster] = {}
    try:
        log(f"generating the library ({args.songs} songs) under {audio_root}")
        group = workloads.library_group(audio_root, CLIPS_DIR, args.songs, seed=1)
        [records] = workloads.generate([group], jobs=len(os.sched_getaffinity(0)), log=log)
        library = group[0]
        library_seconds = sum(record["seconds"] for record in records)
        for workers in (1, 2):
            clusters[workers] = StandingCluster(workers, scratch / f"cluster-{workers}")
            log(f"dask scheduler at {clusters[workers].address} with {workers} worker process(es)")
        variants = {
            "local --jobs 1": ["--jobs", "1"],
            "cluster, 1 worker": ["--cluster", clusters[1].address],
            "local --jobs 2": ["--jobs", "2"],
            "cluster, 2 workers": ["--cluster", clusters[2].address],
        }
        index_run(library, scratch / "warm", ["--jobs", "2"])  # page cache and imports, not measured
        index_run(library, scratch / "warm", variants["cluster, 2 workers"])  # the workers load the model
        index_run(library, scratch / "warm", variants["cluster, 1 worker"])
        walls: dict[str, list[float]] = {name: [] for name in variants}
        for number in range(args.rounds):
            for name, extra in variants.items():
                walls[name].append(index_run(library, scratch / f"index-{number}-{len(walls[name])}", extra))
                log(f"round {number + 1}: {name}: {walls[name][-1]:.2f} s")
    finally:
        for cluster in clusters.values():
            cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)

    def ratios(cluster_name: str, local_name: str) -> list[float]:
        return [c / lo for c, lo in zip(walls[cluster_name], walls[local_name])]

    one, two = ratios("cluster, 1 worker", "local --jobs 1"), ratios("cluster, 2 workers", "local --jobs 2")
    lines = [
        "# `qbsd index --cluster` against local `qbsd index --jobs`",
        "",
        f"Measured by `python benchmarks/cluster.py --songs {args.songs} --rounds {args.rounds}` "
        f"on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC (its docstring says how), "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"load average {load_start:.2f} at the start and {os.getloadavg()[0]:.2f} at the end; "
        f"benchmark wall time {(time.monotonic() - started) / 60:.1f} min.",
        "",
        f"Library: {args.songs} songs, {library_seconds / 3600:.1f} h (3-5 min each, MP3 and FLAC, 44.1 kHz stereo); "
        "each run is `qbsd index --rebuild` of all of it (default analysis: at most four 30 s segments a song), "
        "the whole process timed. Scheduler and workers run on this machine, so the cluster's workers and the "
        "index-writing `qbsd` share its cores as the local run's processes do.",
        "",
        "| variant | wall s (each round) | median wall s | library x realtime |",
        "|---|---|---:|---:|",
    ]
    for name, values in walls.items():
        middle = statistics.median(values)
        lines.append(
            f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {middle:.2f} | {library_seconds / middle:,.0f}x |"
        )
    lines += [
        "",
        "Overhead of going through Dask, wall(cluster) / wall(local) within each round (1.00: none; above: slower):",
        "",
        f"- 1 worker process vs `--jobs 1`: median **{statistics.median(one):.2f}** "
        f"({', '.join(f'{r:.2f}' for r in one)})",
        f"- 2 worker processes vs `--jobs 2`: median **{statistics.median(two):.2f}** "
        f"({', '.join(f'{r:.2f}' for r in two)})",
        f"- scaling 1 -> 2 workers on the cluster: median "
        f"{statistics.median([a / b for a, b in zip(walls['cluster, 1 worker'], walls['cluster, 2 workers'])]):.2f}x",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
