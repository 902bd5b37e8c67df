"""`qbsd index --rebuild` checks before it destroys: a rebuild that fails, finds nothing or is
killed leaves the old index whole, and readers see the old songs until the new ones are
committed, all at once."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from helpers import assert_no_traceback, model_with_another_id, write_chord, write_noise_bursts


def _songs(qbsd, index) -> set[str]:
    result = qbsd("search", "calm", "--top", "500", "--keep-duplicates", "--format", "json", index=index)
    assert result.returncode == 0, result
    return {record["path"] for record in result.json()}


@pytest.fixture
def old_index(qbsd, tmp_path):
    """An index of three generated songs; (its folder, their paths, their tag lines)."""
    music = tmp_path / "old"
    files = [
        write_chord(music / "a.wav"),
        write_chord(music / "b.wav", frequencies=(880.0, 990.0)),
        write_noise_bursts(music / "c.wav"),
    ]
    index = tmp_path / "index"
    assert qbsd("index", music, index=index).returncode == 0
    lines = qbsd("tag", "--vector", *files)
    assert lines.returncode == 0, lines
    return index, {str(path) for path in files}, lines.stdout


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n", b"not json\n", b'{"path": "x.wav", "model": "m", "vector": [2.0]}\n'],
    ids=["empty", "blank", "malformed", "bad-vector"],
)
def test_a_rebuild_from_bad_lines_keeps_the_index(qbsd, old_index, data):
    index, songs, _lines = old_index
    result = qbsd("index", "--rebuild", "--from-jsonl", "-", index=index, input=data)
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert "kept as it was" in result.stderr
    assert _songs(qbsd, index) == songs


def test_a_rebuild_from_lines_of_another_model_keeps_the_index(qbsd, old_index, tmp_path):
    index, songs, lines = old_index
    model_id, other_id, _copy = model_with_another_id(qbsd, tmp_path)
    foreign = "\n".join(
        json.dumps({**json.loads(line), "model": other_id}) for line in lines.splitlines() if line.strip()
    )
    result = qbsd("index", "--rebuild", "--from-jsonl", "-", index=index, input=foreign + "\n")
    assert result.returncode == 1, result
    assert other_id in result.stderr
    assert _songs(qbsd, index) == songs


def test_a_rebuild_of_a_folder_without_audio_keeps_the_index(qbsd, old_index, tmp_path):
    index, songs, _lines = old_index
    empty = tmp_path / "empty"
    empty.mkdir()
    result = qbsd("index", "--rebuild", empty, index=index)
    assert result.returncode == 1, result
    assert "kept as it was" in result.stderr
    assert _songs(qbsd, index) == songs


def test_a_good_rebuild_replaces_the_songs(qbsd, old_index, tmp_path):
    index, _songs_before, _lines = old_index
    new = tmp_path / "new"
    fresh = write_chord(new / "d.wav", frequencies=(300.0, 450.0))
    result = qbsd("index", "--rebuild", new, index=index)
    assert result.returncode == 0, result
    assert _songs(qbsd, index) == {str(fresh)}


@pytest.fixture
def slow_rebuild(qbsd_process, old_index, tmp_path):
    """A rebuild of 30 new songs with one worker, running in a real process."""
    index, songs, _lines = old_index
    new = tmp_path / "new"
    for number in range(30):
        write_chord(new / f"{number:02d}.wav", frequencies=(200.0 + 23 * number, 300.0 + 31 * number), seconds=8.0)
    command = qbsd_process.command + ["index", "--rebuild", str(new), "--jobs", "1", "--index", str(index)]
    process = subprocess.Popen(
        command, env=qbsd_process.env, cwd=qbsd_process.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    yield process, index, songs, new
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_readers_see_the_old_songs_while_a_rebuild_runs(qbsd, slow_rebuild):
    process, index, songs, new = slow_rebuild
    new_songs = {str(new / f"{number:02d}.wav") for number in range(30)}
    old_seen = 0
    while process.poll() is None:
        during = _songs(qbsd, index)
        # all the old songs, or (once committed, while the forest is built) all the new ones:
        # never none, never a mix
        assert during in (songs, new_songs)
        old_seen += during == songs
        time.sleep(0.1)
    assert process.returncode == 0, process.communicate()
    assert old_seen >= 1
    assert _songs(qbsd, index) == new_songs


def test_a_killed_rebuild_keeps_the_old_index(qbsd, qbsd_process, old_index, tmp_path):
    index, songs, _lines = old_index
    new = tmp_path / "new"
    for number in range(12):
        write_chord(new / f"{number:02d}.flac", frequencies=(200.0 + 23 * number, 300.0 + 31 * number), seconds=30.0)
    # the accurate model, slow enough (several seconds for these) to be killed mid-analysis
    command = qbsd_process.command + ["index", "--rebuild", str(new), "--jobs", "1", "--index", str(index)]
    process = subprocess.Popen(
        command + ["--model", "accurate"], env=qbsd_process.env, cwd=qbsd_process.home, stderr=subprocess.PIPE
    )
    time.sleep(3.0)  # well into the analysis
    assert process.poll() is None, "the rebuild finished too soon to be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _songs(qbsd, index) == songs
    check = qbsd("index", "--errors", index=index)
    assert check.returncode == 0, check
