"""qbsd benchmarks: one command that makes its workloads, measures, and writes RESULTS.md.

    python benchmarks/run.py                  # the full benchmark (100 songs, 100k/1M vectors)
    python benchmarks/run.py --quick          # a small smoke version (a few minutes)
    python benchmarks/run.py --songs 200 --out benchmarks/RESULTS.md
    python benchmarks/run.py --sections tag --compare-model OLD.onnx   # two models, same rounds

Workloads are generated from ../shared/data/moods4q/audio into a temporary folder that
is deleted at the end (`--cache DIR` keeps the generated audio there, to reuse it). The
tag model is $QBSD_MODEL, else the shipped one. `qbsd` is the executable on PATH, else
`python -m qbsd_cli` from this checkout. See RESULTS.md for what each figure means.
`--compare-model` adds `qbsd tag --jobs 1` with another model to the tagging rounds, so
that two models' speeds come from the same rounds on the same machine, not from two runs
(this machine drifts by 10% between runs).
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

CLIPS_DIR = REPO.parent / "shared" / "data" / "moods4q" / "audio"
SEGMENT_SECONDS = 30.0

# Targets.
TARGET_VS_NAIVE = 3.0
TARGET_SCALING = 1.8
TARGET_RT_PER_CORE = 600.0
FLOOR_RT_PER_CORE = 500.0  # issue 20: a new fast model, measured in the same run as today's
TARGET_REINDEX_S = 2.0
TARGET_SIMILAR_S = 1.0
TARGET_AGREEMENT = 0.95
TARGET_HELP_S = 0.3
TARGET_TAGS_S = 0.5
TARGET_MEMORY_MB = 500.0


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- running things


class Runner:
    """Runs commands as children and measures wall time, CPU time and peak memory."""

    def __init__(self, home: Path, model: Path, compared_model: Path | None = None):
        self.home = home
        executable = shutil.which("qbsd")
        self.qbsd = [executable] if executable else [sys.executable, "-m", "qbsd_cli"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("QBSD_")}
        env["QBSD_MODEL"] = str(model)
        env["XDG_DATA_HOME"] = str(home / "xdg-data")
        env["XDG_CACHE_HOME"] = str(home / "xdg-cache")
        if not executable:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.env = env
        #: the environment of the runs with `--compare-model` (None without one)
        self.compared_env = {**env, "QBSD_MODEL": str(compared_model)} if compared_model else None
        # The naive reference is one job: one thread everywhere it could use more.
        self.single_thread_env = {
            **env,
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1",
        }

    def run(
        self,
        command: list[str],
        env: dict | None = None,
        stdout=subprocess.DEVNULL,
        stdin_text: str | None = None,
        sample_memory: bool = False,
    ) -> dict:
        """Wall (s), user+sys CPU (s) and ru_maxrss (MB: the largest single process among the
        child and its reaped children). `sample_memory`: also the peak of the summed PSS of
        the child's whole process tree, sampled every 20 ms (MB)."""
        err_path = self.home / "stderr.txt"
        measured = self.home / "measured.json"
        busy_before = machine_busy_seconds()
        with open(err_path, "wb") as err:
            child = subprocess.Popen(
                [sys.executable, str(HERE / "measure.py"), str(measured)] + command,
                stdout=stdout,
                stderr=err,
                env=env or self.env,
                cwd=self.home,
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            )
            sampler = TreeMemorySampler(child.pid) if sample_memory else None
            if stdin_text is not None:
                child.stdin.write(stdin_text.encode())
                child.stdin.close()
            returncode = child.wait()
        stderr = err_path.read_text(errors="replace")
        if returncode != 0:
            raise RuntimeError(f"{' '.join(command[:6])} ... exited {returncode}:\n{stderr[-3000:]}")
        outcome = {**json.loads(measured.read_text()), "stderr": stderr}
        # CPU time the whole machine spent during the run beyond the command's own: another
        # load competing for the cores (the launcher's start-up is a few hundredths of this).
        outcome["other_cpu"] = max(0.0, machine_busy_seconds() - busy_before - outcome["cpu"])
        if sampler:
            outcome["tree_pss_mb"] = sampler.stop()
        return outcome

    def qbsd_run(self, *args, **kwargs) -> dict:
        return self.run(self.qbsd + [str(a) for a in args], **kwargs)


class TreeMemorySampler:
    """Polls the summed proportional set size (PSS) of a process's descendants."""

    def __init__(self, pid: int, interval: float = 0.02):
        import threading

        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as handle:
                        todo += [int(child) for child in handle.read().split()]
            except OSError:
                pass
        return pids

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self._tree()[1:]:  # not the measuring launcher itself
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as handle:
                        for line in handle:
                            if line.startswith("Pss:"):
                                total += int(line.split()[1])
                                break
                except OSError:
                    pass
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024.0


def machine_busy_seconds() -> float:
    """Busy CPU seconds of all cores since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def median(values) -> float:
    return float(statistics.median(values))


def warm_page_cache(paths) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def cv_running() -> bool:
    return subprocess.run(["pgrep", "-f", "scratch/cv.py"], capture_output=True).returncode == 0


def analysed_seconds(paths, max_segments) -> float:
    """Seconds `qbsd tag` analyses in these files (mirrors audio.decode_segments)."""
    import soundfile

    from qbsd_cli.audio import segment_starts

    total = 0.0
    for path in paths:
        info = soundfile.info(str(path))
        length = info.frames / info.samplerate
        for start in segment_starts(length, SEGMENT_SECONDS, max_segments):
            total += max(0.0, min(SEGMENT_SECONDS, length - start))
    return total


# --------------------------------------------------------------------------- sections


def bench_startup(runner: Runner, reps: int, results: dict) -> None:
    log(f"startup: qbsd --help and qbsd tags, {reps} runs each after one warm-up")
    for name, args in [("help", ["--help"]), ("tags", ["tags"])]:
        runner.qbsd_run(*args)
        walls = [runner.qbsd_run(*args)["wall"] for _ in range(reps)]
        results[f"startup_{name}"] = {"median": median(walls), "min": min(walls), "max": max(walls), "runs": reps}
    # What the interpreter alone costs, for scale.
    walls = [runner.run([sys.executable, "-c", "pass"])["wall"] for _ in range(reps)]
    results["startup_python"] = {"median": median(walls), "runs": reps}


def bench_tagging(
    runner: Runner, model: Path, name: str, paths: list[str], rounds: int, variants: list[str], results: dict
) -> None:
    """Side-by-side rounds: every variant once per round, order rotated between rounds."""
    library_seconds = analysed_seconds(paths, None)
    seconds = {"default": analysed_seconds(paths, 4), "full": library_seconds}
    log(
        f"tagging {name}: {len(paths)} files, {library_seconds / 3600:.2f} h "
        f"({seconds['default'] / 3600:.2f} h analysed by default); {rounds} round(s) of {variants}"
    )
    warm_page_cache(paths)
    commands = {
        "default-j1": (runner.qbsd + ["tag", "--jobs", "1"] + paths, runner.env),
        "default-j2": (runner.qbsd + ["tag", "--jobs", "2"] + paths, runner.env),
        "full-j1": (runner.qbsd + ["tag", "--jobs", "1", "--full"] + paths, runner.env),
        "full-j2": (runner.qbsd + ["tag", "--jobs", "2", "--full"] + paths, runner.env),
        "naive-j1": ([sys.executable, str(HERE / "naive.py"), str(model)] + paths, runner.single_thread_env),
    }
    if runner.compared_env:
        commands["compared-default-j1"] = (runner.qbsd + ["tag", "--jobs", "1"] + paths, runner.compared_env)
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_number in range(rounds):
        order = variants[round_number % len(variants) :] + variants[: round_number % len(variants)]
        for variant in order:
            command, env = commands[variant]
            outcome = runner.run(command, env=env)
            if variant.startswith("naive"):
                outcome["naive"] = json.loads(outcome["stderr"].strip().splitlines()[-1])
            outcome.pop("stderr")
            runs[variant].append(outcome)
            log(
                f"  round {round_number + 1} {variant}: {outcome['wall']:.1f} s wall, "
                f"{outcome['cpu']:.1f} s CPU, {outcome['maxrss_mb']:.0f} MB, "
                f"other load {outcome['other_cpu']:.1f} CPU s"
            )
    results[f"tag_{name}"] = {
        "files": len(paths),
        "library_seconds": library_seconds,
        "analysed_seconds": seconds,
        "rounds": rounds,
        "runs": runs,
    }


def run_profile(runner: Runner, model: Path, paths: list[str], mode: str) -> dict:
    out = runner.home / "profile.json"
    with open(out, "wb") as handle:
        outcome = runner.run([sys.executable, str(HERE / "profile_stages.py"), str(model), mode] + paths, stdout=handle)
    profile = json.loads(out.read_text())
    profile["process_wall"] = outcome["wall"]
    return profile


def bench_index(runner: Runner, clips: list[str], clip_folder: Path, index: Path, reps: int, results: dict) -> None:
    """Index the clips (first build, --jobs 2), then re-run on the unchanged index."""
    log(f"index: first build of {len(clips)} clips with --jobs 2")
    warm_page_cache(clips)
    first = runner.qbsd_run("index", clip_folder, "--jobs", "2", "--index", index)
    first.pop("stderr")
    runner.qbsd_run("index", clip_folder, "--index", index)  # warm-up
    walls = [runner.qbsd_run("index", clip_folder, "--index", index)["wall"] for _ in range(reps)]
    results["index"] = {
        "clips": len(clips),
        "first": first,
        "rerun_median": median(walls),
        "rerun_runs": walls,
        "clip_seconds": analysed_seconds(clips, None),
    }
    log(f"  first {first['wall']:.1f} s; unchanged re-run median {median(walls):.2f} s")


def synthetic_vectors(real: np.ndarray, count: int, rng: np.random.Generator, correlated: bool = True) -> np.ndarray:
    """Vectors with the structure of real ones: each mixes 1-3 real song vectors in logit
    space (Dirichlet weights) and adds noise. `correlated`: noise with 0.35^2 times the
    covariance of the real logits (tags vary together, as a model's outputs do); else
    independent noise of 0.35 per-tag standard deviations (a harder, less realistic case)."""
    eps = 1e-4
    clipped = np.clip(real.astype(np.float64), eps, 1 - eps)
    logits = np.log(clipped / (1 - clipped))
    centred = (logits - logits.mean(axis=0)) / np.sqrt(len(logits))
    scale = logits.std(axis=0)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, 50_000):
        n = min(50_000, count - start)
        k = rng.integers(1, 4, size=n)
        picks = rng.integers(0, len(real), size=(n, 3))
        weights = rng.dirichlet(np.ones(3), size=n)
        weights[k == 1] = [1, 0, 0]
        two = k == 2
        weights[two, 2] = 0
        weights[two] /= weights[two].sum(axis=1, keepdims=True)
        mixed = np.einsum("nk,nkd->nd", weights, logits[picks])
        if correlated:
            mixed += 0.35 * (rng.standard_normal((n, len(real))) @ centred)
        else:
            mixed += 0.35 * rng.standard_normal(mixed.shape) * scale
        out[start : start + n] = 1.0 / (1.0 + np.exp(-mixed))
    return out


def folder_bytes(folder: Path) -> dict:
    sizes = {entry.name: entry.stat().st_size for entry in folder.iterdir() if entry.is_file()}
    return {
        "sqlite": sum(v for k, v in sizes.items() if k.startswith("songs.sqlite")),
        "annoy": sum(v for k, v in sizes.items() if k.endswith(".annoy")),
        "total": sum(sizes.values()),
    }


def _fill(store, vectors: np.ndarray, first: int) -> float:
    """put_song every vector in one transaction; seconds taken."""
    started = time.perf_counter()
    with store.writer_lock():
        with store.transaction():
            for i, vector in enumerate(vectors, first):
                store.put_song(
                    f"/music/synthetic/{i // 1000:04d}/song{i:07d}.mp3",
                    5_000_000 + i,
                    1_700_000_000_000_000_000 + i,
                    240.0,
                    vector,
                )
    return time.perf_counter() - started


def _measure_store(runner: Runner, folder: Path, queries: np.ndarray, query_clip: str, reps: int) -> dict:
    """Build the forest, then agreement (in-process) and `qbsd similar` wall (subprocess)."""
    from qbsd_cli.store import IndexStore

    with IndexStore(folder, create=False) as store:
        with store.writer_lock():
            started = time.perf_counter()
            store.rebuild_annoy()
            build_seconds = time.perf_counter() - started
    disk = folder_bytes(folder)
    log(f"  Annoy build {build_seconds:.1f} s; on disk {disk['total'] / 1e6:,.0f} MB")
    # Agreement and per-query time, through the store's own methods.
    agreement, annoy_times, exact_times, perfect = [], [], [], 0
    with IndexStore(folder, create=False) as reader:
        reader.nearest(queries[0], 10)  # load the forest once, as one process would
        reader.exact_nearest(queries[0], 10)  # and the vectors for exact search
        for query in queries:
            t0 = time.perf_counter()
            approximate = {path for path, _ in reader.nearest(query, 10)}
            t1 = time.perf_counter()
            exact = {path for path, _ in reader.exact_nearest(query, 10)}
            t2 = time.perf_counter()
            annoy_times.append(t1 - t0)
            exact_times.append(t2 - t1)
            agreement.append(len(approximate & exact) / 10.0)
            perfect += approximate == exact
    # The whole process, as a user runs it: a real clip (not in the index) as query.
    runner.qbsd_run("similar", query_clip, "--index", folder)  # warm the page cache
    walls = [runner.qbsd_run("similar", query_clip, "--index", folder)["wall"] for _ in range(reps)]
    log(f"  agreement {np.mean(agreement):.3f}; similar wall median {median(walls):.2f} s")
    breakdown = _similar_breakdown(runner, folder, query_clip)
    log("  similar under cProfile: " + ", ".join(f"{k} {v:.2f} s" for k, v in breakdown.items()))
    return {
        "breakdown": breakdown,
        "build_seconds": build_seconds,
        "disk": disk,
        "agreement_mean": float(np.mean(agreement)),
        "agreement_min": float(np.min(agreement)),
        "perfect_fraction": perfect / len(queries),
        "annoy_query_ms": 1000 * median(annoy_times),
        "exact_query_ms": 1000 * median(exact_times),
        "similar_wall_median": median(walls),
        "similar_walls": walls,
    }


SIMILAR_STEPS = {  # cumulative time of these functions in one `qbsd similar` run
    "whole command (cli.similar)": ("cli.py", "similar"),
    "open the index": ("cli.py", "_open_index_for_query"),
    "known_files() (every stored path, to look up the query)": ("store.py", "known_files"),
    "load the model": ("model.py", "__init__"),
    "analyse the query clip": ("model.py", "analyse"),
    "check (CRC32) and load the Annoy file": ("store.py", "_load_annoy"),
    "Annoy search and SQL lookups": ("store.py", "_annoy_search"),
}


def _similar_breakdown(runner: Runner, folder: Path, query_clip: str) -> dict:
    """One `qbsd similar` under cProfile: seconds in its main steps (cProfile slows Python
    code a little; the whole-process figures above are without it)."""
    import pstats

    stats_file = runner.home / "similar.pstats"
    runner.run(
        [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(stats_file),
            "-m",
            "qbsd_cli",
            "similar",
            query_clip,
            "--index",
            str(folder),
        ],
        env={**runner.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), runner.env.get("PYTHONPATH")]))},
    )
    stats = pstats.Stats(str(stats_file)).stats
    found = {}
    for label, (filename, function) in SIMILAR_STEPS.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
            if name == function and path.endswith(os.sep + filename) and "qbsd_cli" in path:
                total = max(total, cumulative)
        found[label] = total
    return found


def bench_similar(
    runner: Runner,
    clip_index: Path,
    query_clip: str,
    home: Path,
    sizes: list[int],
    n_queries: int,
    reps: int,
    results: dict,
) -> None:
    from qbsd_cli.store import IndexStore

    with IndexStore(clip_index, create=False) as clips_store:
        _real_paths, real = clips_store.all_vectors()
        model_id, tags = clips_store.model_id, clips_store.tags
    rng = np.random.default_rng(7)
    queries = real[rng.choice(len(real), size=min(n_queries, len(real)), replace=False)]
    if len(queries) < n_queries:  # fewer real songs than queries (--quick): add synthetic ones
        queries = np.concatenate([queries, synthetic_vectors(real, n_queries - len(queries), rng)])
    results["similar"] = {"real_songs": len(real), "queries": len(queries), "sizes": {}}
    folder = home / "similar-index"
    with IndexStore(folder, create=True) as store:
        store.bind_model(model_id, tags)
    have = 0
    for size in sizes:
        log(f"similar: {size:,} songs: writing {size - have:,} synthetic vectors with put_song")
        with IndexStore(folder, create=False) as store:
            put_seconds = _fill(store, synthetic_vectors(real, size - have, rng), have)
        log(f"  put_song x {size - have:,} in one transaction: {put_seconds:.1f} s; rebuilding Annoy ...")
        have = size
        entry = _measure_store(runner, folder, queries, query_clip, reps)
        entry["put_seconds"] = put_seconds
        results["similar"]["sizes"][str(size)] = entry
    shutil.rmtree(folder)
    # The same test on vectors with independent per-tag noise: harder for Annoy.
    size = sizes[0]
    log(f"similar: {size:,} songs with independent per-tag noise")
    folder = home / "similar-index-independent"
    with IndexStore(folder, create=True) as store:
        store.bind_model(model_id, tags)
        put_seconds = _fill(store, synthetic_vectors(real, size, rng, correlated=False), 0)
    entry = _measure_store(runner, folder, queries, query_clip, reps)
    entry["put_seconds"] = put_seconds
    results["similar"]["independent"] = {str(size): entry}
    shutil.rmtree(folder)


def bench_memory(runner: Runner, model: Path, long_path: str, seconds: float, results: dict, with_naive: bool) -> None:
    results["memory"] = {"seconds": seconds}
    warm_page_cache([long_path])
    variants = [("default", ["tag", "--jobs", "1", long_path]), ("full", ["tag", "--jobs", "1", "--full", long_path])]
    for name, args in variants:
        outcome = runner.qbsd_run(*args, sample_memory=True)
        outcome.pop("stderr")
        results["memory"][name] = outcome
        log(f"memory: qbsd {name} on {seconds / 60:.0f} min: {outcome['maxrss_mb']:.0f} MB, {outcome['wall']:.1f} s")
    if with_naive:
        outcome = runner.run(
            [sys.executable, str(HERE / "naive.py"), str(model), long_path],
            env=runner.single_thread_env,
            sample_memory=True,
        )
        outcome.pop("stderr")
        results["memory"]["naive"] = outcome
        log(f"memory: naive on {seconds / 60:.0f} min: {outcome['maxrss_mb']:.0f} MB")


def bench_micro(results: dict) -> None:
    """Stage-level alternatives, timed on one 30 s segment, that explain the profile."""
    from qbsd_cli import audio

    rng = np.random.default_rng(3)
    stereo = (rng.standard_normal((30 * 44100, 2)) * 0.1).astype(np.float32)
    frames = (rng.standard_normal((2584, 512)) * 0.1).astype(np.float32)

    def best(function, reps=15):
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return min(times)

    results["micro"] = {
        "to_mono_current": best(lambda: audio._to_mono(stereo)),
        "to_mono_column_sum": best(lambda: (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)),
        "rfft_float32": best(lambda: np.fft.rfft(frames, axis=1)),
        "rfft_float64": best(lambda: np.fft.rfft(frames.astype(np.float64), axis=1)),
    }
    log("micro: " + ", ".join(f"{k} {1000 * v:.2f} ms" for k, v in results["micro"].items()))


# --------------------------------------------------------------------------- the report


def machine_info() -> dict:
    model_name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import soundfile

    def git(*args):
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")
        except OSError:
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "qbsd_cli").splitlines()]
    return {
        "git": git("rev-parse", "--short", "HEAD").strip()
        + (f" + uncommitted changes in {', '.join(changed)}" if changed else ""),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": model_name,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "libsndfile": soundfile.__libsndfile_version__,
        "kernel": platform.release(),
    }


def fmt_met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def profile_table(profile: dict) -> tuple[list[str], list[tuple[str, float]]]:
    stages = profile["stages"]
    loop = profile["loop"]
    labels = {
        "decode": "decode (libsndfile: mpg123 / libFLAC; open, seek, read)",
        "mono": "stereo to mono (`audio._to_mono`)",
        "resample": "resample 44.1 -> 22.05 kHz (soxr HQ, `audio.resample`)",
        "stft": "STFT (`np.fft.rfft`)",
        "mel+dct": "framing, window, power, mel (and the 96 bands), log, DCT (rest of `MfccExtractor.mfcc`)",
        "deltas": "delta, delta-delta (`MfccExtractor._derivative`)",
        "patches": "patches or band windows (`frames_to_patches`, `band_windows`)",
        "song statistics": "song statistics (`features.song_statistics`)",
        "band statistics": "band statistics (`logmel.band_statistics`)",
        "model": "model (onnxruntime, `TagModel.patch_outputs`, `statistics_outputs`)",
        "other": "other (finite check, loop, Python)",
    }
    lines = ["| stage | seconds | share | x realtime (analysed s / stage s) |", "|---|---:|---:|---:|"]
    ranked = []
    for key, label in labels.items():
        value = stages.get(key, 0.0)
        ranked.append((key, value / loop))
        speed = profile["analysed_seconds"] / value if value > 0 else float("inf")
        lines.append(f"| {label} | {value:.2f} | {100 * value / loop:.1f}% | {speed:,.0f}x |")
    lines.append(
        f"| **total analysis loop** | **{loop:.2f}** | 100% | **{profile['analysed_seconds'] / loop:,.0f}x** |"
    )
    lines.append(f"| (process start: imports + model load, not in the loop) | {profile['startup']:.2f} | | |")
    ranked.sort(key=lambda item: -item[1])
    return lines, ranked


def similar_bound(entry: dict) -> str:
    steps = entry.get("breakdown") or {}
    whole = steps.get("whole command (cli.similar)") or 0.0
    known = steps.get("known_files() (every stored path, to look up the query)", 0.0)
    if whole and known > 0.3 * whole:
        return (
            f"; under cProfile {known:.2f} s of its {whole:.2f} s is `store.known_files()`, which "
            "reads every stored path to look up the query's one (grows with the index)"
        )
    return ""


def bound_text(ranked: list[tuple[str, float]]) -> str:
    return (
        "bounded by "
        + ", ".join(f"{key} {100 * share:.0f}%" for key, share in ranked[:3])
        + " of one job's time (profile below)"
    )


def write_report(out: Path, results: dict, settings: dict) -> None:
    rows = []  # (what, how, figure, target, met)
    machine = results["machine"]
    lines = ["# qbsd benchmarks", ""]
    lines.append(f"Generated by `python benchmarks/run.py{settings['argv']}` on {results['date']}.")
    lines.append("")
    loaded = results["cv_running_at_start"] or results["cv_running_at_end"]
    lines += [
        "| machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} ({machine['usable_cores']} usable by this process) |",
        f"| date | {results['date']} |",
        f"| load average at start / end | {results['load_start']:.2f} / {results['load_end']:.2f} |",
        f"| software | Python {machine['python']}, numpy {machine['numpy']}, onnxruntime "
        f"{machine['onnxruntime']}, libsndfile {machine['libsndfile']}, Linux {machine['kernel']} |",
        f"| model | `{results['model_id']}` ({results['model_path']}) |",
        *(
            [f"| compared model | `{results['compared_model_id']}` ({results['compared_model_path']}) |"]
            if results.get("compared_model_id")
            else []
        ),
        f"| qbsd | `{' '.join(results['qbsd_command'])}` at {machine['git']} |",
        f"| benchmark wall time | {results['elapsed'] / 60:.1f} min |",
        "",
    ]
    if loaded:
        lines += [
            "> **The machine was loaded during this run**: another CPU-bound job "
            "(`scratch/cv.py`) was running on its cores, so wall-clock figures are pessimistic "
            "and ratios measured side by side are the figures to trust.",
            "",
        ]
    if settings["quick"]:
        lines += ["> **--quick smoke run**: tiny workloads, one run each; not the benchmark's figures.", ""]

    profile_ranked = None
    profile_lines = []
    if "profile_default" in results:
        profile_lines, profile_ranked = profile_table(results["profile_default"])
    bound = bound_text(profile_ranked) if profile_ranked else "see the profile"

    tag = results.get("tag_library")
    if tag:
        runs = tag["runs"]
        lib_s = tag["library_seconds"]
        ana = tag["analysed_seconds"]
        n = tag["rounds"]
        how_runs = f"median of {n} side-by-side round{'s' if n > 1 else ''}"

        def speed(variant, seconds):
            return median([seconds / run["wall"] for run in runs[variant]])

        def ratio(a, b):  # median over rounds of wall(b) / wall(a): how many times faster a is
            return median([rb["wall"] / ra["wall"] for ra, rb in zip(runs[a], runs[b])])

        naive = speed("naive-j1", lib_s) if "naive-j1" in runs else None
        for mode in ["default", "full"]:
            for jobs in (1, 2):
                variant = f"{mode}-j{jobs}"
                if variant not in runs:
                    continue
                lib_speed, ana_speed = speed(variant, lib_s), speed(variant, ana[mode])
                per_core = ana_speed / jobs
                what = (
                    f"`qbsd tag --jobs {jobs}{' --full' if mode == 'full' else ''}` throughput, "
                    f"library ({tag['files']} songs, {lib_s / 3600:.1f} h)"
                )
                figure = (
                    f"{lib_speed:,.0f}x realtime in library seconds; {ana_speed:,.0f}x in analysed "
                    f"seconds ({ana[mode] / 3600:.1f} h) = **{per_core:,.0f}x per core**"
                )
                rows.append(
                    (
                        what,
                        f"wall time of the whole process, output to /dev/null; {how_runs}",
                        figure,
                        f">= {TARGET_RT_PER_CORE:.0f}x per core (analysed seconds)",
                        fmt_met(per_core >= TARGET_RT_PER_CORE)
                        + ("" if per_core >= TARGET_RT_PER_CORE else f"; {bound}"),
                    )
                )
        if naive:
            rows.append(
                (
                    "naive reference throughput, library",
                    "`librosa.load` + `librosa.feature.mfcc` + deltas (+ `librosa.feature.melspectrogram` "
                    "for a model on band windows) + one onnxruntime call per patch or window, one thread, "
                    f"whole process; {how_runs}",
                    f"{naive:,.0f}x realtime (it analyses every second)",
                    "(reference)",
                    "n/a",
                )
            )
            for mode in ["full", "default"]:
                variant = f"{mode}-j1"
                if variant not in runs:
                    continue
                r = ratio(variant, "naive-j1")
                note = (
                    "same audio analysed by both: the like-for-like figure"
                    if mode == "full"
                    else f"qbsd analyses {ana['default'] / lib_s:.0%} of the audio, the reference all of it"
                )
                rows.append(
                    (
                        f"`qbsd tag --jobs 1{' --full' if mode == 'full' else ''}` vs naive reference",
                        f"ratio of wall times within each round, {how_runs}; {note}",
                        f"**{r:.2f}x** faster",
                        f">= {TARGET_VS_NAIVE:.0f}x",
                        fmt_met(r >= TARGET_VS_NAIVE) + ("" if r >= TARGET_VS_NAIVE else f"; {bound}"),
                    )
                )
        if "compared-default-j1" in runs and "default-j1" in runs:
            ours = speed("default-j1", ana["default"])
            theirs = speed("compared-default-j1", ana["default"])
            r = ratio("default-j1", "compared-default-j1")
            rows.append(
                (
                    f"`qbsd tag --jobs 1` with `{results['compared_model_id']}` (--compare-model), same rounds",
                    f"wall time of the whole process, output to /dev/null; {how_runs}, the two models "
                    "in every round (order rotated between rounds)",
                    f"**{theirs:,.0f}x per core** (this run's model: {ours:,.0f}x); this run's model is "
                    f"**{r:.2f}x** as fast (median within rounds)",
                    f">= {FLOOR_RT_PER_CORE:.0f}x per core for both (issue 20's floor)",
                    fmt_met(min(ours, theirs) >= FLOOR_RT_PER_CORE),
                )
            )
        for mode in ["default", "full"]:
            a, b = f"{mode}-j1", f"{mode}-j2"
            if a in runs and b in runs:
                r = ratio(b, a)
                cpu1 = median([run["cpu"] for run in runs[a]])
                cpu2 = median([run["cpu"] for run in runs[b]])
                rows.append(
                    (
                        f"scaling 1 -> 2 jobs, {mode}",
                        f"wall(--jobs 1) / wall(--jobs 2) within each round, {how_runs}",
                        f"**{r:.2f}x** (CPU time {cpu1:.0f} s -> {cpu2:.0f} s)",
                        f">= {TARGET_SCALING}x",
                        fmt_met(r >= TARGET_SCALING) + ("" if r >= TARGET_SCALING else "; see the scaling note below"),
                    )
                )
    clips_tag = results.get("tag_clips")
    if clips_tag:
        runs = clips_tag["runs"]
        sec = clips_tag["library_seconds"]
        for variant in runs:
            value = median([sec / run["wall"] for run in runs[variant]])
            rows.append(
                (
                    f"{variant} throughput, the {clips_tag['files']} clips ({sec / 3600:.1f} h)",
                    f"whole process; {clips_tag['rounds']} round(s)",
                    f"{value:,.0f}x realtime (clips are 30 s: all of each is analysed)",
                    "(context)",
                    "n/a",
                )
            )
        if "naive-j1" in runs and "full-j1" in runs:
            r = median([rb["wall"] / ra["wall"] for ra, rb in zip(runs["full-j1"], runs["naive-j1"])])
            rows.append(
                (
                    "`qbsd tag --jobs 1` vs naive reference, the clips",
                    f"ratio of wall times within each round, median of {clips_tag['rounds']}",
                    f"**{r:.2f}x** faster",
                    f">= {TARGET_VS_NAIVE:.0f}x",
                    fmt_met(r >= TARGET_VS_NAIVE)
                    + (
                        ""
                        if r >= TARGET_VS_NAIVE
                        else "; the clips are already 22.05 kHz mono, so there is no downmix or resampling "
                        "to save, and both spend most of their time in the same MP3 decoder "
                        "(libsndfile) and the same model"
                    ),
                )
            )

    index = results.get("index")
    if index:
        first = index["first"]
        rows.append(
            (
                f"`qbsd index` first build, {index['clips']} clips, --jobs 2",
                "whole process, once",
                f"{first['wall']:.1f} s = {index['clip_seconds'] / first['wall']:,.0f}x realtime",
                "(context)",
                "n/a",
            )
        )
        value = index["rerun_median"]
        rows.append(
            (
                f"`qbsd index` again on the unchanged index of {index['clips']} clips",
                f"whole process, median of {len(index['rerun_runs'])}",
                f"**{value:.2f} s**",
                f"< {TARGET_REINDEX_S:.0f} s",
                fmt_met(value < TARGET_REINDEX_S),
            )
        )
    similar = results.get("similar")
    if similar:

        def size_label(count: int) -> str:
            return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"

        smallest = min(int(s) for s in similar["sizes"])
        for size, entry in similar["sizes"].items():
            count = int(size)
            label = size_label(count)
            primary = count == smallest
            reps = len(entry["similar_walls"])
            rows.append(
                (
                    f"`qbsd similar CLIP.mp3` on {label} songs",
                    f"whole process (decode and analyse the 30 s query, open the index, check and "
                    f"load the forest, search), median of {reps}",
                    f"**{entry['similar_wall_median']:.2f} s**",
                    f"< {TARGET_SIMILAR_S:.0f} s" if primary else "(context)",
                    (fmt_met(entry["similar_wall_median"] < TARGET_SIMILAR_S) if primary else "n/a")
                    + similar_bound(entry),
                )
            )
            if entry.get("breakdown"):
                steps = "; ".join(f"{k} {v:.2f} s" for k, v in entry["breakdown"].items())
                rows.append(
                    (
                        f"where `qbsd similar` spends its time, {label} songs",
                        "one run under cProfile (cumulative seconds of the main steps)",
                        steps,
                        "(context)",
                        "n/a",
                    )
                )
            rows.append(
                (
                    f"Annoy top-10 agreement with exact cosine, {label} songs",
                    f"{similar['queries']} queries (real clip vectors), mean over queries of (songs in both top-10s) / 10, "
                    "through `IndexStore.nearest` / `exact_nearest`",
                    f"**{entry['agreement_mean']:.1%}** (worst query {entry['agreement_min']:.0%}; "
                    f"{entry['perfect_fraction']:.0%} identical; {entry['annoy_query_ms']:.1f} ms vs "
                    f"{entry['exact_query_ms']:.1f} ms exact per query)",
                    f">= {TARGET_AGREEMENT:.0%}" if primary else "(context)",
                    fmt_met(entry["agreement_mean"] >= TARGET_AGREEMENT) if primary else "n/a",
                )
            )
            rows.append(
                (
                    f"index build and size, {label} songs",
                    f"`put_song` x {label} in one transaction, then `IndexStore.rebuild_annoy` "
                    "(20 trees), timed in-process; bytes of the index folder",
                    f"build {entry['build_seconds']:.1f} s (put_song {entry['put_seconds']:.1f} s); "
                    f"{entry['disk']['total'] / 1e6:,.0f} MB on disk (SQLite "
                    f"{entry['disk']['sqlite'] / 1e6:,.0f} MB + Annoy {entry['disk']['annoy'] / 1e6:,.0f} MB)",
                    "(report)",
                    "n/a",
                )
            )
        for size, entry in similar.get("independent", {}).items():
            rows.append(
                (
                    f"Annoy top-10 agreement, {size_label(int(size))} songs with *independent* per-tag noise",
                    "as above; a harder, less realistic synthetic set",
                    f"{entry['agreement_mean']:.1%} (worst {entry['agreement_min']:.0%}); "
                    f"`similar` {entry['similar_wall_median']:.2f} s",
                    "(context)",
                    "n/a",
                )
            )
    for key, target, label in [
        ("startup_help", TARGET_HELP_S, "`qbsd --help`"),
        ("startup_tags", TARGET_TAGS_S, "`qbsd tags`"),
    ]:
        if key in results:
            entry = results[key]
            rows.append(
                (
                    f"{label} wall time",
                    f"whole process, median of {entry['runs']} after a warm-up "
                    "(time.perf_counter around subprocess; hyperfine not installed)"
                    if not shutil.which("hyperfine")
                    else f"median of {entry['runs']}",
                    f"**{entry['median']:.3f} s** (min {entry['min']:.3f}, max {entry['max']:.3f})",
                    f"< {target} s",
                    fmt_met(entry["median"] < target),
                )
            )
    memory = results.get("memory")
    if memory:
        for name in ["default", "full"]:
            entry = memory[name]
            rows.append(
                (
                    f"peak memory, `qbsd tag{' --full' if name == 'full' else ''}` of one "
                    f"{memory['seconds'] / 60:.0f}-minute MP3",
                    "ru_maxrss of the child (os.wait4: the largest one process of the command and "
                    "its analysis worker); in brackets the peak sum of PSS over all its processes, "
                    "sampled every 20 ms",
                    f"**{entry['maxrss_mb']:.0f} MB** (all processes: {entry['tree_pss_mb']:.0f} MB; "
                    f"{entry['wall']:.1f} s wall)",
                    f"< {TARGET_MEMORY_MB:.0f} MB",
                    fmt_met(entry["maxrss_mb"] < TARGET_MEMORY_MB),
                )
            )
        if "naive" in memory:
            entry = memory["naive"]
            rows.append(
                (
                    "peak memory, naive reference on the same file",
                    "ru_maxrss of the child",
                    f"{entry['maxrss_mb']:.0f} MB ({entry['wall']:.1f} s wall; it analyses every second)",
                    "(context)",
                    "n/a",
                )
            )

    lines += ["## Results", "", "| what | how measured | figure | target | met? |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines.append("")

    lines += [
        "## Which seconds are counted",
        "",
        "*Library seconds* are the full length of every song in the library; *analysed seconds* "
        "are what `qbsd tag` actually decodes and analyses: by default at most four 30-second "
        "segments per file (so about 2 of a song's 3-5 minutes), with `--full` all of it. "
        '"x realtime" is seconds of audio divided by wall-clock seconds of the whole `qbsd` '
        'process (start-up and model load included); "per core" divides by the number of jobs '
        "(the machine has as many cores as the largest `--jobs` used). The naive reference "
        "always analyses every second.",
        "",
    ]

    if tag:
        lines += [
            "## Tagging runs (library)",
            "",
            "| variant | wall s (each round) | other load, CPU s (each round) | CPU s (median) | "
            "peak RSS MB | library x RT | analysed x RT |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for variant, variant_runs in tag["runs"].items():
            mode = variant.removeprefix("compared-").split("-")[0]
            seconds = tag["library_seconds"] if mode == "naive" else tag["analysed_seconds"][mode]
            walls = ", ".join(f"{r['wall']:.1f}" for r in variant_runs)
            others = ", ".join(f"{r.get('other_cpu', 0):.1f}" for r in variant_runs)
            lines.append(
                f"| {variant} | {walls} | {others} | "
                f"{median([r['cpu'] for r in variant_runs]):.1f} | "
                f"{max(r['maxrss_mb'] for r in variant_runs):.0f} | "
                f"{median([tag['library_seconds'] / r['wall'] for r in variant_runs]):,.0f}x | "
                f"{median([seconds / r['wall'] for r in variant_runs]):,.0f}x |"
            )
        lines += [
            "",
            "*Other load* is the CPU time the whole machine spent during a run beyond the "
            "command's own (from /proc/stat): near 0 on an idle machine; a round where it is "
            "large was slowed by another job.",
        ]
        if "naive-j1" in tag["runs"]:
            stages = tag["runs"]["naive-j1"][0]["naive"]["stages"]
            lines += [
                "",
                "Naive reference, first round, where its time goes: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
                + ".",
            ]
        lines.append("")

    for mode in ["default", "full", "full+monofix"]:
        profile = results.get(f"profile_{mode}")
        if not profile:
            continue
        table, _ranked = profile_table(profile)
        title = (
            mode
            if mode != "full+monofix"
            else (
                "full mode with `audio._to_mono` replaced in-process by a column sum (what the one-line fix would give)"
            )
        )
        lines += [
            f"## Profile: one job, {title}, library",
            "",
            f"`benchmarks/profile_stages.py`: `TagModel.analyse` in one process over the "
            f"{settings['songs']} songs, with timers around the stage functions it calls "
            f"(exclusive times). Analysed {profile['analysed_seconds'] / 3600:.2f} h of audio.",
            "",
        ]
        lines += table
        by_format = profile["decode_by_format"]
        secs = profile["seconds_by_format"]
        lines += [
            "",
            "Decoding by format: "
            + "; ".join(
                f"{fmt.upper()} {by_format.get(fmt, 0):.2f} s for {secs[fmt] / 60:.0f} min analysed "
                f"({secs[fmt] / max(by_format.get(fmt, 0), 1e-9):,.0f}x realtime)"
                for fmt in sorted(secs)
            )
            + ".",
            "",
        ]

    micro = results.get("micro")
    if micro:
        settings["notes"].append(
            f"Stereo to mono on a 30 s 44.1 kHz segment: `audio._to_mono` takes "
            f"{1000 * micro['to_mono_current']:.1f} ms, `(x[:, 0] + x[:, 1]) * 0.5` "
            f"{1000 * micro['to_mono_column_sum']:.1f} ms (the same float32 result for two channels)."
        )
    if tag and "default-j1" in tag["runs"] and "default-j2" in tag["runs"]:
        for mode in ["default", "full"]:
            one, two = tag["runs"].get(f"{mode}-j1"), tag["runs"].get(f"{mode}-j2")
            if one and two:
                settings["notes"].append(
                    f"Scaling, {mode}: --jobs 1 took {median([r['wall'] for r in one]):.1f} s wall / "
                    f"{median([r['cpu'] for r in one]):.1f} s CPU; --jobs 2 took "
                    f"{median([r['wall'] for r in two]):.1f} s wall / {median([r['cpu'] for r in two]):.1f} s "
                    f"CPU (all processes). Perfect scaling would halve the wall time at equal CPU time; "
                    f"extra CPU time with 2 jobs means the two cores slow each other down (memory "
                    f"bandwidth, shared caches, another load on the machine)."
                )
    full_profile = results.get("profile_full")
    if tag and full_profile and "naive-j1" in tag["runs"]:
        decode = full_profile["stages"]["decode"] * tag["library_seconds"] / full_profile["analysed_seconds"]
        naive_wall = median([r["wall"] for r in tag["runs"]["naive-j1"]])
        settings["notes"].append(
            f"Ceiling of the like-for-like ratio: decoding the library (libsndfile, the same library "
            f"the naive reference's `librosa.load` uses) takes {decode:.1f} s of one job's "
            f"{full_profile['loop']:.1f} s; even if every other stage cost nothing, `qbsd tag --full` "
            f"would be {naive_wall / decode:.1f}x faster than the reference's {naive_wall:.1f} s."
        )
    fixed = results.get("profile_full+monofix")
    if full_profile and fixed:
        settings["notes"].append(
            f"With the one-line `_to_mono` fix the full-mode loop takes {fixed['loop']:.1f} s instead of "
            f"{full_profile['loop']:.1f} s: {fixed['analysed_seconds'] / fixed['loop']:,.0f}x realtime "
            f"per core instead of {full_profile['analysed_seconds'] / full_profile['loop']:,.0f}x."
        )
    if settings.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in settings["notes"]] + [""]

    lines += [
        "## Workloads",
        "",
        f"- **library**: {settings['songs']} songs of 3-5 minutes, each a concatenation of 4Q "
        "clips (../shared/data/moods4q/audio), upsampled to 44.1 kHz stereo (right channel "
        "delayed 3 ms), two thirds MP3 at constant 192/256/320 kbit/s (the bitrate checked in "
        "each file's frame header and by its size), one third FLAC 16-bit; written with "
        "soundfile (libsndfile + LAME).",
        f"- **clips**: the {results.get('index', {}).get('clips', 'n')} 4Q clips as they are "
        "(30 s, 22.05 kHz mono MP3).",
        f"- **long file**: one {settings['long_minutes']:g}-minute MP3, 44.1 kHz stereo, 256 kbit/s.",
        "- **similarity index**: synthetic songs whose vectors mix 1-3 real clip vectors "
        "(Dirichlet weights, in logit space) plus noise with 0.35^2 times the covariance of the "
        "real logits (tags vary together, as the model's outputs do; the *independent* row "
        "uses independent noise of 0.35 per-tag standard deviations instead), "
        "written with `IndexStore.put_song` in one transaction, then `rebuild_annoy`; "
        f"sizes {settings['similar_sizes']}, each larger index the previous one grown.",
        "",
        "Generated audio lives in a temporary folder deleted after the run (or in `--cache DIR`).",
        "",
    ]
    out.write_text("\n".join(lines))
    log(f"wrote {out}")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=None, help="songs in the library (default 100; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a small smoke version")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report file (default benchmarks/RESULTS.md; RESULTS-quick.md with --quick)",
    )
    parser.add_argument("--runs", type=int, default=None, help="side-by-side rounds of the tagging runs (default 3)")
    parser.add_argument("--cache", type=Path, default=None, help="keep generated audio here and reuse it")
    parser.add_argument(
        "--report-from", type=Path, default=None, help="only rewrite the report from a results JSON of an earlier run"
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="only make the audio workloads in --cache DIR, measure nothing"
    )
    parser.add_argument(
        "--sections",
        default="startup,tag,profile,clips,index,similar,micro,memory",
        help="comma-separated subset to run",
    )
    parser.add_argument("--long-minutes", type=float, default=None, help="length of the long file (default 60)")
    parser.add_argument(
        "--compare-model",
        type=Path,
        default=None,
        help="another model file: its `qbsd tag --jobs 1` joins the tagging rounds, side by side",
    )
    parser.add_argument("--similar-sizes", default=None, help="index sizes (default 100000,1000000)")
    args = parser.parse_args()
    quick = args.quick
    songs = args.songs or (3 if quick else 100)
    runs = args.runs or (1 if quick else 3)
    long_minutes = args.long_minutes or (5.0 if quick else 60.0)
    sizes = [int(s) for s in (args.similar_sizes or ("20000,40000" if quick else "100000,1000000")).split(",")]
    sections = set(args.sections.split(","))
    out = args.out or HERE / ("RESULTS-quick.md" if quick else "RESULTS.md")
    settings = {
        "quick": quick,
        "songs": songs,
        "long_minutes": long_minutes,
        "similar_sizes": " and ".join(f"{s:,}" for s in sizes),
        "notes": [],
        "argv": "".join(" " + a for a in sys.argv[1:]),
    }
    if args.report_from:
        results = json.loads(args.report_from.read_text())
        saved = results.get("settings") or {**settings, "argv": " --cache /tmp/qbsd-bench"}
        write_report(out, results, {**saved, "notes": []})
        return 0
    model = Path(os.environ.get("QBSD_MODEL") or REPO / "models" / "qbsd.onnx").resolve()
    if not model.exists():
        sys.exit(f"no model at {model}: set QBSD_MODEL")
    if args.generate_only and not args.cache:
        sys.exit("--generate-only needs --cache DIR")
    if not CLIPS_DIR.is_dir():
        sys.exit(f"{CLIPS_DIR} not found: the benchmarks need the 4Q clips beside the repository")
    from qbsd_cli.model import TagModel

    model_id = TagModel(model).model_id
    compared = args.compare_model.resolve() if args.compare_model else None
    if compared and not compared.is_file():
        sys.exit(f"no model at {compared} (--compare-model)")
    if compared and "tag" not in sections:
        sys.exit("--compare-model times the tagging section: add tag to --sections")
    started = time.perf_counter()
    results: dict = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(),
        "model_id": model_id,
        "model_path": str(model),
        "compared_model_id": TagModel(compared).model_id if compared else None,
        "compared_model_path": str(compared) if compared else None,
        "cv_running_at_start": cv_running(),
        "load_start": os.getloadavg()[0],
        "settings": {**settings, "notes": []},
    }
    import signal

    def terminated(signum, _frame):  # clean the temporary folder on kill
        log(f"stopped by signal {signum}")
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    temporary = Path(tempfile.mkdtemp(prefix="qbsd-bench-"))
    try:
        home = temporary / "home"
        home.mkdir()
        runner = Runner(home, model, compared)
        results["qbsd_command"] = [Path(runner.qbsd[0]).name] + runner.qbsd[1:]
        audio_root = args.cache.resolve() if args.cache else temporary / "audio"
        clips = [str(p) for p in workloads.clip_paths(CLIPS_DIR)]
        if quick:
            clips = clips[:40]
        groups = []
        if sections & {"tag", "profile"}:
            groups.append(workloads.library_group(audio_root, CLIPS_DIR, songs, seed=1))
        if "memory" in sections:
            groups.append(workloads.long_group(audio_root, CLIPS_DIR, long_minutes, seed=1))
        made = workloads.generate(groups, jobs=len(os.sched_getaffinity(0)), log=log)
        library = [record["path"] for record in made[0]] if sections & {"tag", "profile"} else []
        long_record = made[-1][0] if "memory" in sections else None
        if args.generate_only:
            log(f"workloads ready in {audio_root}")
            return 0

        if "startup" in sections:
            bench_startup(runner, 3 if quick else 10, results)
        if "tag" in sections:
            bench_tagging(
                runner,
                model,
                "library",
                library,
                runs,
                ["default-j1", "default-j2", "full-j1", "full-j2", "naive-j1"]
                + (["compared-default-j1"] if compared else []),
                results,
            )
        if "profile" in sections:
            for mode in ["default", "full"]:
                log(f"profile: one job in-process, {mode} mode, {len(library)} files")
                results[f"profile_{mode}"] = run_profile(runner, model, library, mode)
        if "clips" in sections:
            bench_tagging(runner, model, "clips", clips, runs, ["full-j1", "naive-j1"], results)
        clip_index = home / "clip-index"
        if sections & {"index", "similar"}:
            clip_folder = CLIPS_DIR
            if quick:  # a folder holding just the chosen clips, as symlinks
                clip_folder = temporary / "clips"
                clip_folder.mkdir()
                for clip in clips:
                    (clip_folder / Path(clip).name).symlink_to(clip)
            bench_index(runner, clips, clip_folder, clip_index, 3 if quick else 5, results)
        if "similar" in sections:
            bench_similar(runner, clip_index, clips[0], home, sizes, 50 if quick else 200, 3 if quick else 5, results)
        if "micro" in sections:
            bench_micro(results)
        if "memory" in sections:
            bench_memory(runner, model, long_record["path"], long_record["seconds"], results, with_naive=True)
        results["cv_running_at_end"] = cv_running()
        results["load_end"] = os.getloadavg()[0]
        results["elapsed"] = time.perf_counter() - started
        (temporary / "results.json").write_text(json.dumps(results, indent=1, default=str))
        shutil.copy(temporary / "results.json", out.with_suffix(".json"))
        write_report(out, results, settings)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
