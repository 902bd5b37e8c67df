"""`qbsd tag --cluster` and `qbsd index --cluster` on a real Dask cluster.

The cluster is a `distributed.LocalCluster` of two worker processes (one thread each), the
processes a user gets from `dask scheduler` and `dask worker`: the files go to them by
path, and the one `qbsd` process writes the index. What the cluster computes must be
what this machine computes: the same records, the same stored vectors, the same
failures; a worker killed mid-run loses nothing; an unreachable scheduler writes
nothing; the index's writer lock holds as it does locally; the per-file time limit
holds on the workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, assert_no_traceback, copy_clips
from reliability import Background, error_lines, is_sparse, stored_songs, summary, wait_until, write_endless_wav

distributed = pytest.importorskip(
    "distributed", reason="the cluster extra is not installed: pip install '.[cluster]' to test --cluster"
)

#: One core per worker, as on a real cluster: BLAS threads would only compete.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def dask_cluster():
    """(scheduler address, a client of it) for two worker processes of one thread each."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=WORKER_ENV
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield cluster.scheduler_address, client


def mixed_folder(factory, clips, folder):
    """Real clips, generated audio and bad files (by name) in nested folders."""
    real = copy_clips(clips, folder / "real")
    factory.folder = folder / "generated"
    generated = [factory.chord("chord.wav"), factory.noise("noise.flac"), factory.chord("short.wav", seconds=0.2)]
    bad = [factory.broken("broken.mp3"), factory.broken("empty.flac", content=b"")]
    return real + generated, bad


def stored(index_folder) -> dict[str, np.ndarray]:
    """Every song of an index and its stored vector, read through the library (a search
    for as many songs as there are ranks them all, duplicates too: the 4Q clips hold one
    recording twice, MT0000523076 and MT0000941301, which their fingerprints tell)."""
    from qbsd_cli.api import Index

    with Index.open(index_folder) as index:
        every = index.search("calm", top=index.song_count(), keep_duplicates=True)
        return {match.path: index.query_vector(match.path)[0] for match in every}


def stored_names(index_folder) -> dict[str, tuple]:
    """Every song of an index and its (artist, album, title, length), through the library."""
    from qbsd_cli.api import Index

    with Index.open(index_folder) as index:
        every = index.search("calm", top=index.song_count(), keep_duplicates=True)
        return {match.path: (match.artist, match.album, match.title, match.length) for match in every}


def stored_fingerprints(index_folder) -> dict[str, bytes | None]:
    """Every song of an index and its audio fingerprint, as the store keeps it."""
    from qbsd_cli.store import IndexStore

    with IndexStore(index_folder, create=False) as store:
        paths, _matrix, _unit, infos = store.catalogue()
        return {path: info.fingerprint if info else None for path, info in zip(paths, infos)}


def failures(index_folder) -> list[tuple[str, str]]:
    from qbsd_cli.api import Index

    with Index.open(index_folder) as index:
        return [(failure.path, failure.reason) for failure in index.failures()]


def test_tag_on_the_cluster_equals_local(qbsd, dask_cluster, clips, make_audio, tmp_path):
    address, _ = dask_cluster
    files, bad = mixed_folder(make_audio, clips[:6], tmp_path / "music")
    args = ["tag", "--vector", "--top", "0", "--format", "json", *files[:4], *bad, *files[4:]]
    local = qbsd(*args, "--jobs", "2")
    remote = qbsd(*args, "--cluster", address)
    assert local.returncode == remote.returncode == 1, (local, remote)  # the bad files, and the too-short one
    assert_no_traceback(remote)
    assert remote.err_lines == local.err_lines
    assert {line.split(":")[1].strip() for line in remote.err_lines} == {str(path) for path in [*bad, files[-1]]}
    assert [record["path"] for record in remote.json()] == [str(path) for path in files[:-1]]  # input order
    assert_same_records(remote.json(), local.json())


def assert_same_records(remote: list[dict], local: list[dict]) -> None:
    """The same songs, model, durations and tags; scores and vectors equal to float
    rounding (a worker process may sum in another order than the local one: one CI run saw
    0.773018 against 0.773019)."""
    assert len(remote) == len(local)
    for theirs, ours in zip(remote, local):
        assert {k: v for k, v in theirs.items() if k not in ("tags", "vector")} == {
            k: v for k, v in ours.items() if k not in ("tags", "vector")
        }
        np.testing.assert_allclose(theirs["vector"], ours["vector"], rtol=0, atol=1e-5)
        their_scores = {tag["tag"]: tag["score"] for tag in theirs["tags"]}
        our_scores = {tag["tag"]: tag["score"] for tag in ours["tags"]}
        assert their_scores.keys() == our_scores.keys()
        for tag, score in their_scores.items():
            assert abs(score - our_scores[tag]) <= 1.5e-4, tag


def test_index_on_the_cluster_equals_local(qbsd, dask_cluster, clips, make_audio, tmp_path):
    address, _ = dask_cluster
    music = tmp_path / "music"
    files, bad = mixed_folder(make_audio, clips[:8], music)
    local = qbsd("index", music, "--jobs", "2", index=tmp_path / "local")
    remote = qbsd("index", music, "--cluster", address, index=tmp_path / "remote")
    assert local.returncode == remote.returncode == 1, (local, remote)
    assert_no_traceback(remote)
    assert sorted(error_lines(remote)) == sorted(error_lines(local))
    assert summary(remote) == summary(local)
    assert summary(remote)["added"] == len(files) - 1 and summary(remote)["failed"] == len(bad) + 1
    assert failures(tmp_path / "remote") == failures(tmp_path / "local")
    assert {path for path, _ in failures(tmp_path / "remote")} == {str(path) for path in [*bad, files[-1]]}
    ours, theirs = stored(tmp_path / "local"), stored(tmp_path / "remote")
    assert sorted(theirs) == sorted(ours) == sorted(str(path) for path in files[:-1])
    for path, vector in ours.items():
        np.testing.assert_allclose(theirs[path], vector, atol=1e-5, rtol=0)
    # the names come back with the analysis from the workers, completed by the folders here
    names = stored_names(tmp_path / "remote")
    assert names == stored_names(tmp_path / "local")
    chord = names[str(music / "generated" / "chord.wav")]
    assert chord[2] == "chord" and chord[3] == pytest.approx(4.0, abs=0.01)
    assert all(title and length for _artist, _album, title, length in names.values())
    # the audio fingerprints, bit for bit: duplicates must not depend on where a song was analysed
    prints = stored_fingerprints(tmp_path / "remote")
    assert prints == stored_fingerprints(tmp_path / "local") and any(prints.values())
    again = qbsd("index", music, "--cluster", address, index=tmp_path / "remote")  # nothing left to analyse
    assert summary(again)["unchanged"] == len(files) - 1 and again.returncode == 0, again


def free_address() -> str:
    """A local TCP address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_unreachable_scheduler_writes_nothing(qbsd_process, make_audio, tmp_path):
    address = free_address()
    make_audio.chord("chord.wav")
    index = tmp_path / "index"
    quick = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}  # Dask's own setting; 30 s by default
    for result in (
        qbsd_process("index", make_audio.folder, "--cluster", address, index=index, env=quick),
        qbsd_process("index", make_audio.folder, index=index, env={**quick, "QBSD_CLUSTER": address}),
        qbsd_process("tag", make_audio.folder / "chord.wav", "--cluster", address, env=quick),
    ):
        assert result.returncode == 1, result
        assert_no_traceback(result)
        [line] = result.err_lines
        assert line.startswith(f"qbsd: cannot reach the Dask scheduler at {address}: "), line
        assert result.stdout == ""
    assert not index.exists()


def test_an_unchanged_library_needs_no_scheduler(qbsd_process, make_audio, tmp_path):
    """The scheduler is reached only when there are files to analyse: with nothing new, a
    run with --cluster (or $QBSD_CLUSTER) of a scheduler that is down succeeds."""
    address = free_address()
    make_audio.chord("chord.wav")
    index = tmp_path / "index"
    assert qbsd_process("index", make_audio.folder, index=index).returncode == 0
    for result in (
        qbsd_process("index", make_audio.folder, "--cluster", address, index=index),
        qbsd_process("index", make_audio.folder, index=index, env={"QBSD_CLUSTER": address}),
    ):
        assert result.returncode == 0, result
        assert summary(result)["unchanged"] == 1 and summary(result)["added"] == 0, result


def test_without_the_extra_the_error_says_how_to_install_it(make_audio):
    chord = make_audio.chord("chord.wav")
    hide_dask = (
        "import sys; sys.modules['distributed'] = None; from qbsd_cli.cli import run; sys.exit(run(sys.argv[1:]))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("QBSD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", hide_dask, "tag", str(chord), "--cluster", "tcp://127.0.0.1:8786"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 1, completed
    assert completed.stderr.splitlines() == [
        "qbsd: --cluster needs the cluster extra (distributed is missing): "
        "pip install 'qbsd[cluster]'  (or pip install '.[cluster]' in a checkout)"
    ]


#: How long the cluster run of the lock test is kept busy by its slow file (its --timeout):
#: long enough for three refused `qbsd` processes to start and stop inside it on a fully
#: loaded 2-core machine (at 8 s the third one once came after the run had finished).
BUSY_S = 30


def test_a_cluster_run_holds_the_index_and_the_time_limit_holds_on_workers(qbsd_process, dask_cluster, clips, tmp_path):
    address, _ = dask_cluster
    music = tmp_path / "music"
    real = copy_clips(clips[:8], music)
    endless = write_endless_wav(music / "zz-endless.wav")
    if not is_sparse(endless):
        pytest.skip("this file system does not store sparse files: the 4 GB test file would fill it")
    index = tmp_path / "index"
    run = Background(qbsd_process, "index", "--cluster", address, "--full", "--timeout", BUSY_S, music, index=index)
    try:
        assert wait_until(lambda: stored_songs(index) > 0 or not run.running(), timeout=60)
        for args in (["index", music], ["index", music, "--cluster", address], ["index", "--rebuild", music]):
            second = qbsd_process(*args, index=index)
            assert second.returncode == 1, second
            assert second.err_lines == [
                f"qbsd: another `qbsd index` is running on the index at {index}; try again when it has finished"
            ]
            assert run.running(), f"the cluster run finished before `qbsd {' '.join(map(str, args))}` ended: {run}"
        assert run.wait(120) == 1, run
    finally:
        run.signal_group(signal.SIGKILL)
    assert error_lines(run) == [f"qbsd: {endless}: timed out after {BUSY_S} s"]
    assert summary(run)["added"] == len(real) and summary(run)["failed"] == 1


def test_a_worker_killed_mid_run_loses_nothing(qbsd_process, dask_cluster, clips, tmp_path):
    address, client = dask_cluster
    music = tmp_path / "music"
    files = copy_clips(clips[:200], music)  # a few seconds of analysis: long enough to kill a worker in
    index = tmp_path / "index"
    run = Background(qbsd_process, "index", "--cluster", address, music, index=index)
    try:
        assert wait_until(lambda: stored_songs(index) >= 4 or not run.running(), timeout=60)
        victim = sorted(client.run(os.getpid).values())[0]
        os.kill(victim, signal.SIGKILL)  # as the out-of-memory killer would
        assert run.running(), f"the run finished before a worker could be killed: {run}"
        assert run.wait(180) == 0, run
    finally:
        run.signal_group(signal.SIGKILL)
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the next test
    assert victim not in client.run(os.getpid).values()
    assert summary(run)["added"] == len(files) and summary(run)["failed"] == 0
    assert error_lines(run) == []
    assert sorted(stored(index)) == sorted(str(path) for path in files)


def test_workers_with_another_model_are_refused(qbsd, make_audio, tmp_path):
    """A worker whose qbsd ships another model (here: a copy of the package whose fast model
    has another id, first on the worker's PYTHONPATH) refuses the run before it writes a song."""
    import shutil

    from helpers import model_with_another_id

    their_qbsd = tmp_path / "their-qbsd"
    shutil.copytree(REPO / "qbsd_cli", their_qbsd / "qbsd_cli", ignore=shutil.ignore_patterns("__pycache__"))
    (their_qbsd / "models").mkdir()
    ours, theirs, other = model_with_another_id(qbsd, tmp_path)
    shutil.copyfile(other, their_qbsd / "models" / "qbsd.onnx")
    make_audio.chord("chord.wav")
    index = tmp_path / "index"
    built = tmp_path / "built-index"  # made here: a refused --rebuild must leave its song
    assert qbsd("index", make_audio.folder, index=built).returncode == 0
    # a `dask worker` process of its own, started as a user would, with the copy on its path
    with (
        distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        address = cluster.scheduler_address
        env = {key: value for key, value in os.environ.items() if not key.startswith("QBSD_")}
        worker_process = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard"],
            env={**env, **WORKER_ENV, "PYTHONPATH": str(their_qbsd)},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client.wait_for_workers(1, timeout=60)
            [worker] = client.scheduler_info()["workers"]
            for result in (
                qbsd("index", make_audio.folder, "--cluster", address, index=index),
                qbsd("tag", make_audio.folder / "chord.wav", "--cluster", address),
                qbsd("index", "--rebuild", make_audio.folder, "--cluster", address, index=built),
            ):
                assert result.returncode == 1, result
                assert result.err_lines == [
                    f"qbsd: the Dask worker at {worker}, for 'fast': model {theirs}; this qbsd holds model {ours}: "
                    "install the same qbsd version (and model file) on every worker"
                ]
                assert result.stdout == ""
        finally:
            worker_process.kill()
            worker_process.wait(30)
    assert stored_songs(index) == 0
    assert stored_songs(built) == 1
