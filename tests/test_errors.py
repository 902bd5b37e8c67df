"""Errors: usage mistakes exit 2, failures exit 1, always one clear line and no traceback."""

from __future__ import annotations

import pytest
from helpers import AudioFactory, assert_no_traceback


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["tag", "--top", "-1", "x.wav"],
        ["tag", "--format", "bogus", "x.wav"],
        ["tag", "--no-such-option"],
        ["similar"],
        ["search"],
        ["similar", "x.wav", "--top", "0"],
        ["index", "--jobs", "-3", "."],
    ],
)
def test_usage_errors_exit_2(qbsd, args):
    result = qbsd(*args)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "Error" in result.stderr


def test_usage_errors_found_by_qbsd_exit_2(qbsd, make_audio, tmp_path):
    chord = make_audio.chord()
    index = ["--index", tmp_path / "index"]
    cases = {
        ("tag", "--format", "m3u", chord): "m3u",
        ("index", *index): "folders",
        ("index", tmp_path / "no-such-folder", *index): "no such folder",
    }
    for args, words in cases.items():
        result = qbsd(*args)
        assert result.returncode == 2, result
        assert_no_traceback(result)
        [message] = result.err_lines
        assert message.startswith("qbsd: ") and words in message


@pytest.mark.parametrize("args", [["similar", "-"], ["search", "calm"], ["index", "--errors"]])
def test_missing_index(qbsd, tmp_path, args):
    missing = tmp_path / "no-index-here"
    result = qbsd(*args, index=missing, input='{"path": "x", "model": "m", "vector": [0.5]}\n')
    assert result.returncode == 1, result
    assert_no_traceback(result)
    [message] = result.err_lines
    assert message.startswith("qbsd: ")
    assert str(missing) in message and "qbsd index" in message
    assert not missing.exists()  # a query never creates an index
    assert result.stdout == ""


def test_missing_default_index(qbsd):
    result = qbsd("search", "calm")
    assert result.returncode == 1, result
    [message] = result.err_lines
    assert str(qbsd.data_home / "qbsd") in message


def test_empty_index_is_not_a_crash(qbsd, tmp_path, make_audio):
    (tmp_path / "empty").mkdir()
    index = tmp_path / "index"
    built = qbsd("index", tmp_path / "empty", index=index)
    assert built.returncode == 0, built
    assert "0 songs" in built.stderr
    for args in (["search", "calm"], ["similar", make_audio.chord()]):
        result = qbsd(*args, index=index)
        assert result.returncode == 1, result
        assert_no_traceback(result)
        [message] = result.err_lines
        assert "no songs" in message and "qbsd index" in message


def test_missing_model(qbsd, make_audio, tmp_path):
    missing = tmp_path / "no-model.onnx"
    for args in (["tag", make_audio.chord()], ["tags"]):
        result = qbsd(*args, env={"QBSD_MODEL": str(missing)})
        assert result.returncode == 1, result
        assert_no_traceback(result)
        [message] = result.err_lines
        assert "model file not found" in message and str(missing) in message


def test_not_a_model(qbsd, make_audio, tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00not an onnx file" * 10)
    for args in (["tag", make_audio.chord()], ["tags"]):
        result = qbsd(*args, "--model", fake)
        assert result.returncode == 1, result
        assert_no_traceback(result)
        [message] = result.err_lines
        assert str(fake) in message


def test_bad_query_for_similar(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("a.wav")
    music.noise("b.flac")
    index = tmp_path / "index"
    assert qbsd("index", music.folder, index=index).returncode == 0
    cases = [
        (["similar", tmp_path / "missing.wav"], None, 2),
        (["similar", "-"], "not json\n", 2),
        (["similar", "-"], '{"path": "x"}\n', 2),
        (["similar", "-"], "", 2),
        (["similar", music.broken("broken.wav")], None, 1),
    ]
    for args, stdin, status in cases:
        result = qbsd(*args, index=index, input=stdin)
        assert result.returncode == status, result
        assert_no_traceback(result)
        assert len(result.err_lines) == 1, result
        assert result.err_lines[0].startswith("qbsd: ")
        assert result.stdout == ""


def test_debug_shows_the_traceback(qbsd, tmp_path):
    result = qbsd("--debug", "search", "calm", index=tmp_path / "none")
    assert result.returncode == 1, result
    assert "Traceback" in result.stderr
    assert "no index at" in result.stderr
