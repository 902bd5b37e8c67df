"""A file that would take too long, or that kills its analysis process, fails alone.

The slow input is genuine: a valid 27-hour WAV of silence (stored sparse, so it costs no
disk), which `--full` analyses segment by segment for many minutes. With `--timeout 2`
its worker is killed after 2 s, the file is reported as timed out, and the run goes on.
A FIFO would block whoever opens it; it is rejected before anything opens it.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import assert_no_traceback, write_chord
from reliability import Background, error_lines, is_sparse, summary, wait_until, write_endless_wav


@pytest.fixture
def endless(tmp_path):
    path = write_endless_wav(tmp_path / "music" / "endless.wav")
    if not is_sparse(path):
        pytest.skip("this file system does not store sparse files: the 4 GB test file would fill it")
    return path


def test_without_full_a_long_file_is_quick(qbsd, endless):
    result = qbsd("tag", "--top", "1", endless, timeout=60)
    assert result.returncode == 0, result
    [record] = result.json()
    assert record["duration"] == 120.0  # four 30 s segments, reached by seeking


def test_slow_file_times_out_and_the_run_goes_on(qbsd, endless, tmp_path):
    good = write_chord(tmp_path / "music" / "good.wav", seconds=3.0)
    started = time.monotonic()
    result = qbsd("tag", "--full", "--timeout", "2", "--jobs", "1", "--top", "1", endless, good, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert result.err_lines == [f"qbsd: {endless}: timed out after 2 s"]
    assert [r["path"] for r in result.json()] == [str(good)]  # its replacement worker did it
    assert elapsed < 30, elapsed


def test_index_records_a_timeout_and_does_not_retry_it(qbsd, endless, tmp_path):
    write_chord(tmp_path / "music" / "good.wav", seconds=3.0)
    index = tmp_path / "index"
    first = qbsd("index", "--full", "--timeout", "2", tmp_path / "music", index=index, timeout=60)
    assert first.returncode == 1, first
    assert error_lines(first) == [f"qbsd: {endless}: timed out after 2 s"]
    assert summary(first)["added"] == 1 and summary(first)["failed"] == 1
    listed = qbsd("index", "--errors", index=index)
    assert listed.json() == [{"path": str(endless), "error": "timed out after 2 s"}]
    started = time.monotonic()
    second = qbsd("index", "--full", "--timeout", "2", tmp_path / "music", index=index, timeout=60)
    assert second.returncode == 0, second
    assert summary(second)["failed"] == 1 and summary(second)["unchanged"] == 1
    assert time.monotonic() - started < 20


def test_fifo_is_rejected_without_opening_it(qbsd, tmp_path):
    music = tmp_path / "music"
    good = write_chord(music / "good.wav", seconds=3.0)
    fifo = music / "hang.wav"
    os.mkfifo(fifo)
    tagged = qbsd("tag", "--top", "1", fifo, good, timeout=30)
    assert tagged.returncode == 1, tagged
    assert tagged.err_lines == [f"qbsd: {fifo}: is a named pipe (FIFO), not a regular file"]
    assert [r["path"] for r in tagged.json()] == [str(good)]
    indexed = qbsd("index", music, index=tmp_path / "index", timeout=30)
    assert indexed.returncode == 1, indexed
    assert error_lines(indexed) == [f"qbsd: {fifo}: is a named pipe (FIFO), not a regular file"]


def test_a_killed_worker_fails_only_its_file(qbsd, endless, tmp_path):
    """The OOM killer (here: the test) kills the process analysing a file."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        pytest.skip("needs Linux /proc/PID/task/TID/children to find the worker process")
    good = write_chord(tmp_path / "music" / "good.wav", seconds=3.0)
    run = Background(qbsd, "tag", "--full", "--jobs", "1", "--timeout", "60", "--top", "1", endless, good)
    try:
        assert wait_until(lambda: run.children() or not run.running(), timeout=30)
        time.sleep(0.5)  # the worker is inside the long file
        [worker] = run.children()
        os.kill(worker, signal.SIGKILL)
        assert run.wait(60) == 1, run
    finally:
        run.signal_group(signal.SIGKILL)
    assert "Traceback" not in run.stderr
    assert run.err_lines == [f"qbsd: {endless}: the analysis process was killed by SIGKILL (out of memory?)"], run
    assert [json.loads(line)["path"] for line in run.stdout.splitlines()] == [str(good)]
