"""Concurrent use of one index: one writer at a time, readers never blocked or misled.

A second `qbsd index` (or `--rebuild`) on an index that is being written fails at once
with a clear message and touches nothing; `similar` and `search` during an index run
answer from what is committed, which always includes the last complete run.
"""

from __future__ import annotations

import signal

import pytest

from conftest import assert_no_traceback, copy_clips
from reliability import Background, integrity, stored_songs, summary, wait_until

FIRST, MORE = 8, 22


@pytest.fixture
def library(qbsd, tmp_path, clips):
    """An index of FIRST clips (a complete run), and MORE clips added to the folder since."""
    music = tmp_path / "music"
    first = copy_clips(clips[:FIRST], music / "first")
    index = tmp_path / "index"
    built = qbsd("index", music, index=index)
    assert built.returncode == 0, built
    more = copy_clips(clips[FIRST:FIRST + MORE], music / "more")
    return music, index, first, more


def running_index(qbsd, music, index) -> Background:
    """`qbsd index` on one core, caught while it is committing songs."""
    run = Background(qbsd, "index", "--jobs", "1", music, index=index)
    assert wait_until(lambda: stored_songs(index) > FIRST or not run.running(), timeout=60)
    assert run.running(), f"the run finished too soon to test anything: {run}"
    return run


def test_second_writer_is_refused(qbsd, library):
    music, index, first, more = library
    run = running_index(qbsd, music, index)
    try:
        for args in (["index", music], ["index", "--rebuild", music], ["index", first[0].parent]):
            second = qbsd(*args, index=index)
            assert second.returncode == 1, second
            assert_no_traceback(second)
            [message] = second.err_lines
            assert message == (f"qbsd: another `qbsd index` is running on the index at {index}; "
                               f"try again when it has finished")
            assert second.stdout == ""
        assert run.wait(120) == 0, run
    finally:
        run.signal_group(signal.SIGKILL)
    assert integrity(index) == "ok"
    assert summary(run)["added"] == MORE
    again = qbsd("index", music, index=index)  # the refused runs changed nothing
    assert again.returncode == 0, again
    assert summary(again)["unchanged"] == FIRST + MORE
    assert summary(again)["songs"] == FIRST + MORE


def test_queries_during_an_index_run(qbsd, library):
    music, index, first, more = library
    every = {str(path) for path in first + more}
    run = running_index(qbsd, music, index)
    try:
        for _ in range(2):
            similar = qbsd("similar", first[0], "--top", "100", "--format", "json", index=index)
            searched = qbsd("search", "calm", "--top", "100", "--format", "json", index=index)
            for result in (similar, searched):
                assert result.returncode == 0, result
                assert_no_traceback(result)
                assert result.err_lines == []
                found = [record["path"] for record in result.json()]
                assert len(found) == len(set(found))
                assert set(found) <= every
                # the last complete run is all there
                assert {str(path) for path in first[1:]} <= set(found)
        assert run.running(), "the queries did not overlap the run"
        assert run.wait(120) == 0, run
    finally:
        run.signal_group(signal.SIGKILL)
    final = qbsd("similar", first[0], "--top", "100", "--format", "json", index=index)
    assert len(final.json()) == FIRST + MORE - 1
