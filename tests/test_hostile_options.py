"""Odd option values and odd things in the index folder: one line and an exit status, never
an internal error."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_no_traceback, write_chord, write_noise_bursts

from qbsd_cli.errors import IndexDamagedError, StoreError


def test_an_enormous_timeout_means_no_limit(qbsd, tmp_path):
    song = write_chord(tmp_path / "a.wav")
    for value in ("1e308", "inf"):
        result = qbsd("tag", song, "--timeout", value, "--jobs", "1")
        assert result.returncode == 0, result
        assert len(result.json()) == 1


def test_a_timed_out_file_is_retried_under_a_longer_timeout(qbsd, tmp_path):
    music = tmp_path / "music"
    write_chord(music / "a.wav", seconds=20.0)
    index = tmp_path / "index"
    first = qbsd("index", music, "--timeout", "0.001", "--jobs", "1", index=index)
    assert first.returncode == 1 and "timed out after 0.001 s" in first.stderr, first
    again = qbsd("index", music, "--timeout", "0.001", "--jobs", "1", index=index)
    assert again.returncode == 0 and "added 0," in again.stderr and "failed 1," in again.stderr, again
    longer = qbsd("index", music, "--timeout", "120", "--jobs", "1", index=index)
    assert longer.returncode == 0, longer
    assert "added 1," in longer.stderr and "failed 0," in longer.stderr
    assert qbsd("index", "--errors", index=index).lines == []


def test_a_forest_file_replaced_by_a_folder(qbsd, tmp_path):
    music = tmp_path / "music"
    write_chord(music / "a.wav")
    write_noise_bursts(music / "b.wav")
    index = tmp_path / "index"
    assert qbsd("index", music, index=index).returncode == 0
    [forest] = index.glob("songs-*.annoy")
    forest.unlink()
    forest.mkdir()
    query = qbsd("similar", music / "a.wav", "--format", "json", index=index)
    assert query.returncode == 0, query
    write_chord(music / "c.wav", frequencies=(500.0, 700.0))
    update = qbsd("index", music, index=index)
    assert update.returncode == 0, update
    assert_no_traceback(update)
    rebuilt = qbsd("index", "--rebuild", music, index=index)
    assert rebuilt.returncode == 0, rebuilt
    assert forest.is_dir()  # not ours to delete
    assert len(qbsd("similar", music / "a.wav", "--format", "json", index=index).json()) == 2


def test_loading_a_forest_that_is_a_folder_is_damage_not_a_crash(tmp_path):
    from qbsd_cli.store.forest import Forest

    forest = Forest(tmp_path)
    state = forest.write(1, np.random.default_rng(0).random((50, 8), dtype=np.float32), 2, rev=1)
    (tmp_path / state.file).unlink()
    (tmp_path / state.file).mkdir()
    with pytest.raises(IndexDamagedError, match="is not a file"):
        Forest(tmp_path).load(state, 8)
    (tmp_path / "songs-2.annoy").mkdir()
    with pytest.raises(StoreError, match="in the way"):
        forest.write(2, np.ones((3, 8), dtype=np.float32), 2, rev=2)


def test_a_folder_that_cannot_be_read_is_not_taken_for_deleted(qbsd_process, tmp_path):
    """Songs under a folder the indexer cannot read (permissions, a failing disk) stay in the
    index until the folder can be read again and says they are gone."""
    import os
    import subprocess

    from test_read_only_index import _without_privileges

    prefix = _without_privileges()
    music = tmp_path / "music"
    write_chord(music / "top.wav")
    write_chord(music / "sub" / "a.wav", frequencies=(300.0, 450.0))
    write_noise_bursts(music / "sub" / "b.wav")
    index = tmp_path / "index"
    assert qbsd_process("index", music, index=index).returncode == 0
    os.chmod(tmp_path, 0o755)
    os.chmod(music / "sub", 0)
    try:
        command = prefix + qbsd_process.command + ["index", str(music), "--index", str(index)]
        run = subprocess.run(command, env=qbsd_process.env, cwd=qbsd_process.home, capture_output=True, text=True)
        assert run.returncode == 1 and "cannot read the folder" in run.stderr, run.stderr
        assert "removed 0," in run.stderr and "3 songs" in run.stderr
    finally:
        os.chmod(music / "sub", 0o755)
    assert len(qbsd_process("search", "calm", "--format", "json", index=index).json()) == 3
