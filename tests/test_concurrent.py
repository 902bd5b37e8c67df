"""Concurrent use of one index: one writer at a time, readers never blocked or misled.

A second `qbsd index` (or `--rebuild`) on an index that is being written fails at once
with a clear message and touches nothing; `similar` and `search` during an index run
answer from what is committed, which always includes the last complete run. The running
index is kept busy by a genuinely slow file (a 27-hour WAV analysed with --full).
"""

from __future__ import annotations

import signal

import pytest
from helpers import assert_no_traceback, copy_clips
from reliability import Background, integrity, is_sparse, stored_songs, summary, wait_until, write_endless_wav

FIRST, MORE = 8, 22


@pytest.fixture
def library(qbsd, tmp_path, clips):
    """An index of FIRST clips (a complete run), and MORE clips added to the folder since."""
    music = tmp_path / "music"
    first = copy_clips(clips[:FIRST], music / "first")
    index = tmp_path / "index"
    built = qbsd("index", music, index=index)
    assert built.returncode == 0, built
    more = copy_clips(clips[FIRST : FIRST + MORE], music / "more")
    if not is_sparse(write_endless_wav(music / "more" / "zz-endless.wav")):
        pytest.skip("this file system does not store sparse files: the 4 GB test file would fill it")
    return music, index, first, more


#: How long the running index is kept busy by its slow file.
BUSY_S = 8


def running_index(qbsd, music, index) -> Background:
    """`qbsd index` caught while it is busy: it has committed the new clips and is on a file
    that takes far longer than its --timeout (see test_timeout), so it stays busy for
    BUSY_S seconds and then finishes, reporting that one file as timed out."""
    run = Background(qbsd, "index", "--jobs", "1", "--full", "--timeout", str(BUSY_S), music, index=index)
    assert wait_until(lambda: stored_songs(index) == FIRST + MORE or not run.running(), timeout=60)
    assert run.running(), f"the run finished too soon to test anything: {run}"
    return run


def finished(run: Background, music) -> None:
    assert run.wait(120) == 1, run
    assert run.err_lines[0] == f"qbsd: {music / 'more' / 'zz-endless.wav'}: timed out after {BUSY_S} s"
    assert summary(run)["added"] == MORE and summary(run)["failed"] == 1


def test_one_writer_at_a_time(qbsd, library):
    music, index, first, more = library
    run = running_index(qbsd, music, index)
    try:
        for args in (["index", music], ["index", "--rebuild", music], ["index", first[0].parent]):
            second = qbsd(*args, index=index)
            assert second.returncode == 1, second
            assert_no_traceback(second)
            [message] = second.err_lines
            assert message == (
                f"qbsd: another `qbsd index` is running on the index at {index}; try again when it has finished"
            )
            assert second.stdout == ""
        assert run.running(), "the refused runs did not overlap the running one"
        finished(run, music)
    finally:
        run.signal_group(signal.SIGKILL)
    assert integrity(index) == "ok"
    # the refused runs changed nothing (the same --timeout: a longer one would retry the slow file)
    again = qbsd("index", "--timeout", str(BUSY_S), music, index=index)
    assert again.returncode == 0, again
    assert summary(again)["unchanged"] == FIRST + MORE
    assert summary(again)["songs"] == FIRST + MORE


def test_queries_during_an_index_run(qbsd, library):
    music, index, first, more = library
    every = {str(path) for path in first + more}
    run = running_index(qbsd, music, index)
    try:
        similar = qbsd("similar", first[0], "--top", "100", "--format", "json", index=index)
        searched = qbsd("search", "calm", "--top", "100", "--format", "json", index=index)
        assert run.running(), "the queries did not overlap the run"
        for result in (similar, searched):
            assert result.returncode == 0, result
            assert_no_traceback(result)
            assert result.err_lines == []
            found = [record["path"] for record in result.json()]
            assert len(found) == len(set(found))
            assert set(found) <= every
            assert {str(path) for path in first[1:]} <= set(found)  # the last complete run
        finished(run, music)
    finally:
        run.signal_group(signal.SIGKILL)
    final = qbsd("similar", first[0], "--top", "100", "--format", "json", index=index)
    assert len(final.json()) == FIRST + MORE - 1
