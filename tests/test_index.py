"""`qbsd index`: analyse new or changed files, forget deleted ones, report on stderr."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import AudioFactory, assert_no_traceback, copy_clips

SUMMARY = re.compile(
    r"added (\d+), updated (\d+), removed (\d+), failed (\d+), unchanged (\d+); "
    r"(\d+) songs in (.+); [\d.]+ s$"
)


def summary(result) -> dict:
    """The counts of the one summary line on stderr."""
    lines = [line for line in result.err_lines if SUMMARY.search(line)]
    assert len(lines) == 1, result
    match = SUMMARY.search(lines[0])
    names = ["added", "updated", "removed", "failed", "unchanged", "songs"]
    counts = {name: int(value) for name, value in zip(names, match.groups())}
    counts["folder"] = match.group(7)
    return counts


class Music:
    """A private music folder: six real clips, a wav chord, a flac noise track, a text file."""

    def __init__(self, root: Path, clips: list[Path]):
        self.root = root
        self.folder = root / "music"
        self.real = copy_clips(clips[:6], self.folder / "real")
        generated = AudioFactory(self.folder / "generated" / "deeper")
        self.generated = [generated.chord("chord.wav"), generated.noise("noise.flac")]
        (self.folder / "notes.txt").write_text("not audio, and not an audio name either\n")
        self.files = self.real + self.generated
        self.index = root / "index"


@pytest.fixture
def music(tmp_path, clips) -> Music:
    return Music(tmp_path, clips)


@pytest.fixture
def indexed(qbsd, music) -> Music:
    """`music`, indexed once (the first run is checked by test_first_run_adds_every_file)."""
    first = qbsd("index", music.folder, index=music.index)
    assert first.returncode == 0, first
    music.first_run = first
    return music


def test_first_run_adds_every_file(indexed):
    result = indexed.first_run
    assert result.stdout == ""  # results go nowhere: the summary is on stderr
    counts = summary(result)
    assert counts["added"] == len(indexed.files) == 8
    assert counts["updated"] == counts["removed"] == counts["failed"] == counts["unchanged"] == 0
    assert counts["songs"] == 8
    assert counts["folder"] == str(indexed.index)
    assert (indexed.index / "songs.sqlite").is_file()


def test_second_run_analyses_nothing(qbsd, indexed):
    result = qbsd("index", indexed.folder, index=indexed.index)
    assert result.returncode == 0, result
    counts = summary(result)
    assert (counts["added"], counts["updated"], counts["removed"]) == (0, 0, 0)
    assert counts["unchanged"] == 8
    assert counts["songs"] == 8
    assert "added 0, updated 0" in result.stderr


def test_touched_file_is_reanalysed(qbsd, indexed):
    touched = indexed.real[2]
    info = touched.stat()
    os.utime(touched, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    result = qbsd("index", indexed.folder, index=indexed.index)
    assert result.returncode == 0, result
    counts = summary(result)
    assert (counts["added"], counts["updated"], counts["removed"]) == (0, 1, 0)
    assert counts["unchanged"] == 7
    assert counts["songs"] == 8


def test_deleted_file_is_removed_and_no_longer_found(qbsd, indexed):
    gone = indexed.real[1]
    query = indexed.real[0]
    before = qbsd("similar", query, "--top", "20", "--format", "json", index=indexed.index)
    assert before.returncode == 0, before
    assert str(gone) in [r["path"] for r in before.json()]

    gone.unlink()
    result = qbsd("index", indexed.folder, index=indexed.index)
    assert result.returncode == 0, result
    counts = summary(result)
    assert (counts["added"], counts["updated"], counts["removed"]) == (0, 0, 1)
    assert counts["songs"] == 7

    after = qbsd("similar", query, "--top", "20", "--format", "json", index=indexed.index)
    assert after.returncode == 0, after
    paths = [r["path"] for r in after.json()]
    assert str(gone) not in paths
    assert len(paths) == 6  # every other song, the query itself excluded
    searched = qbsd("search", "calm", "--top", "20", "--format", "json", index=indexed.index)
    assert str(gone) not in [r["path"] for r in searched.json()]


def test_default_index_location_is_under_xdg_data_home(qbsd, music):
    result = qbsd("index", music.folder)  # no --index
    assert result.returncode == 0, result
    database = qbsd.data_home / "qbsd" / "songs.sqlite"
    assert database.is_file()
    assert summary(result)["folder"] == str(qbsd.data_home / "qbsd")
    found = qbsd("search", "calm", "--top", "3", "--format", "json")  # no --index either
    assert found.returncode == 0, found
    assert len(found.json()) == 3


def test_from_jsonl_on_stdin(qbsd, music):
    index = music.root / "from-jsonl"
    pipeline = qbsd.shell(
        f"qbsd tag --vector {' '.join(map(str, music.files))} | qbsd index --from-jsonl - --index {index}"
    )
    assert pipeline.returncode == 0, pipeline
    counts = summary(pipeline)
    assert counts["added"] == counts["songs"] == len(music.files)

    query = music.real[3]
    similar = qbsd("similar", query, "--top", "3", "--format", "json", index=index)
    assert similar.returncode == 0, similar
    records = similar.json()
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert str(query) not in [r["path"] for r in records]
    assert {r["path"] for r in records} <= {str(f) for f in music.files}


def test_from_jsonl_file_matches_analysis(qbsd, music, indexed):
    tagged = qbsd("tag", "--vector", "--top", "0", *music.files)
    assert tagged.returncode == 0, tagged
    jsonl = music.root / "vectors.jsonl"
    jsonl.write_text(tagged.stdout)
    index = music.root / "from-file"
    result = qbsd("index", "--from-jsonl", jsonl, index=index)
    assert result.returncode == 0, result
    assert summary(result)["added"] == 8
    # the same neighbours as the index built by analysing the folder
    query = music.real[0]
    direct = qbsd("similar", query, "--top", "5", "--format", "json", index=indexed.index)
    ingested = qbsd("similar", query, "--top", "5", "--format", "json", index=index)
    assert [r["path"] for r in ingested.json()] == [r["path"] for r in direct.json()]
    for a, b in zip(ingested.json(), direct.json()):
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_errors_lists_the_bad_file(qbsd, music):
    bad = AudioFactory(music.folder / "broken").broken("bad.wav")
    result = qbsd("index", music.folder, index=music.index)
    assert result.returncode == 1, result  # a file failed in this run
    assert_no_traceback(result)
    counts = summary(result)
    assert counts["added"] == 8 and counts["failed"] == 1
    [complaint] = [line for line in result.err_lines if str(bad) in line]
    assert complaint.startswith("qbsd: ")

    listed = qbsd("index", "--errors", index=music.index)
    assert listed.returncode == 0, listed
    [record] = listed.json()
    assert record["path"] == str(bad)
    assert record["error"]

    again = qbsd("index", music.folder, index=music.index)  # a known failure is not new
    assert again.returncode == 0, again
    assert summary(again)["failed"] == 1
    assert summary(again)["added"] == 0

    bad.unlink()
    cleaned = qbsd("index", music.folder, index=music.index)
    assert summary(cleaned)["removed"] == 1
    assert qbsd("index", "--errors", index=music.index).stdout == ""


def test_rebuild_with_a_file_that_is_no_model_keeps_the_index(qbsd, tmp_path):
    """The model is checked before --rebuild deletes the old index: a refused rebuild
    leaves every song where it was."""
    music = AudioFactory(tmp_path / "music")
    music.chord("a.wav")
    index = tmp_path / "index"
    assert qbsd("index", music.folder, index=index).returncode == 0
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx file" * 10)
    for args in (["index", "--rebuild", music.folder], ["index", "--rebuild", "--from-jsonl", "-"]):
        refused = qbsd(*args, "--model", junk, index=index, input="")
        assert refused.returncode == 1, refused
        assert_no_traceback(refused)
        [message] = refused.err_lines
        assert str(junk) in message
        kept = qbsd("search", "calm", "--format", "json", index=index)
        assert kept.returncode == 0, kept
        assert [record["path"] for record in kept.json()] == [str(music.folder / "a.wav")]
