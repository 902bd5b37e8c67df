"""Interrupted runs lose nothing that was finished and never leave a broken index.

`qbsd index` is killed with SIGKILL (no chance to clean up) at random moments over a
folder of 30 real clips; after each kill `similar` and `search` answer from what was
committed, and the last run analyses only what is missing. Ctrl-C (SIGINT to the whole
process group, as a terminal sends it) exits 130 and keeps the finished files.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import time

import pytest
from helpers import assert_no_traceback, copy_clips
from reliability import Background, integrity, stored_songs, summary, wait_until

N_FILES = 30
KILLS = 4


@pytest.fixture
def music(tmp_path, clips):
    return copy_clips(clips[:N_FILES], tmp_path / "music")


def check_queries(qbsd, index, music) -> int:
    """`similar` and `search` work on whatever the killed runs committed; returns its size."""
    stored = stored_songs(index)
    names = {str(path) for path in music}
    searched = qbsd("search", "calm", "--top", "100", "--format", "json", index=index)
    similar = qbsd("similar", music[0], "--top", "100", "--format", "json", index=index)
    for result in (searched, similar):
        assert_no_traceback(result)
        if stored == 0:  # nothing committed yet: the clear "no songs" error
            assert result.returncode == 1, result
            assert "qbsd index" in result.stderr
            continue
        assert result.returncode == 0, result
        assert {record["path"] for record in result.json()} <= names
    if stored:
        assert len(searched.json()) == stored
        # the query itself is left out when it is in the index
        assert len(similar.json()) in (stored, stored - 1)
    return stored


def songs_without_names(index) -> int:
    """Committed songs whose title and length are not stored (each song's names are
    committed in the same batch as its vector)."""
    database = index / "songs.sqlite"
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
        try:
            query = "SELECT count(*) FROM songs WHERE info_read = 0 OR title IS NULL OR length IS NULL"
            return connection.execute(query).fetchone()[0]
        except sqlite3.OperationalError:  # the tables are not made yet
            return 0


def test_sigkill_at_random_moments_then_resume(qbsd, qbsd_process, tmp_path, music):
    index = tmp_path / "index"
    # kill moments relative to how long a whole run takes on this machine, so that a
    # faster qbsd or machine cannot let every run finish before its kill (timed as a real
    # process, as the killed runs are)
    started = time.monotonic()
    complete = qbsd_process("index", "--jobs", "2", tmp_path / "music", index=tmp_path / "timing-index")
    assert complete.returncode == 0, complete
    whole_run = time.monotonic() - started
    chooser = random.Random(20240611)
    outcomes = []
    for _ in range(KILLS):
        run = Background(qbsd, "index", "--jobs", "2", tmp_path / "music", index=index)
        time.sleep(chooser.uniform(0.1, 0.7) * whole_run)
        run.kill_main()
        status = run.wait(60)
        # the workers die with it (else they would hold the index lock)
        assert run.group_gone(within=10), "worker processes outlived a killed `qbsd index`"
        assert "Traceback" not in run.stderr
        assert songs_without_names(index) == 0
        outcomes.append((status, check_queries(qbsd, index, music)))
    killed = [stored for status, stored in outcomes if status == -signal.SIGKILL]
    assert killed, f"no kill landed while `qbsd index` ran: {outcomes}"
    stored = stored_songs(index)
    assert integrity(index) == "ok"

    final = qbsd("index", "--jobs", "2", tmp_path / "music", index=index)
    assert final.returncode == 0, final
    counts = summary(final)
    assert counts["unchanged"] == stored, (outcomes, final)  # nothing stored is analysed again
    assert counts["added"] == N_FILES - stored
    assert counts["failed"] == counts["updated"] == counts["removed"] == 0
    assert counts["songs"] == N_FILES
    assert check_queries(qbsd, index, music) == N_FILES


def test_ctrl_c_exits_130_and_keeps_finished_files(qbsd, tmp_path, music):
    index = tmp_path / "index"
    run = Background(qbsd, "index", "--jobs", "1", tmp_path / "music", index=index)
    try:
        assert wait_until(lambda: stored_songs(index) >= 3 or not run.running(), timeout=60)
        assert run.running(), f"the run finished before it could be interrupted: {run}"
        seen = stored_songs(index)
        run.signal_group(signal.SIGINT)
        assert run.wait(30) == 130, run
    finally:
        run.signal_group(signal.SIGKILL)
    assert run.group_gone(within=10)
    assert "Traceback" not in run.stderr
    assert run.err_lines == ["qbsd: interrupted; finished work is kept"], run
    kept = stored_songs(index)
    assert seen <= kept < N_FILES

    again = qbsd("index", "--jobs", "2", tmp_path / "music", index=index)
    assert again.returncode == 0, again
    counts = summary(again)
    assert counts["unchanged"] == kept
    assert counts["added"] == N_FILES - kept
    assert counts["failed"] == 0


def test_ctrl_c_during_tag(qbsd, tmp_path, music):
    run = Background(qbsd, "tag", "--jobs", "1", "--top", "1", *music)
    try:
        assert wait_until(lambda: run.stdout.count("\n") >= 2 or not run.running(), timeout=60)
        assert run.running(), run
        run.signal_group(signal.SIGINT)
        assert run.wait(30) == 130, run
    finally:
        run.signal_group(signal.SIGKILL)
    assert run.group_gone(within=10)
    assert run.err_lines == ["qbsd: interrupted; finished work is kept"], run
    lines = run.stdout.splitlines()
    assert 2 <= len(lines) < N_FILES
    assert [json.loads(line)["path"] for line in lines] == [str(p) for p in music[: len(lines)]]
