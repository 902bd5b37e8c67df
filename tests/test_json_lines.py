"""JSON lines from elsewhere: every bad line is one `qbsd: SOURCE:LINE: reason`, the good
ones are stored, nothing hangs, nothing bad reaches a listing, and file names that are not
UTF-8 survive `qbsd tag --vector | qbsd index --from-jsonl -`."""

from __future__ import annotations

import json
import os
from urllib.parse import unquote_to_bytes

import pytest
from helpers import assert_no_traceback, write_chord, write_noise_bursts


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """Three generated songs and their `qbsd tag --vector` records."""
    from helpers import InProcessQbsd

    home = tmp_path_factory.mktemp("jsonl")
    music = home / "music"
    files = [
        write_chord(music / "chord.wav"),
        write_chord(music / "high.flac", frequencies=(880.0, 1108.7, 1318.5)),
        write_noise_bursts(music / "drums.wav"),
    ]
    qbsd = InProcessQbsd(home / "home")
    result = qbsd("tag", "--vector", *files)
    assert result.returncode == 0, result
    return home, files, result.json()


def _line(record: dict, **changes) -> str:
    return json.dumps({**record, **changes})


def _bad_lines(record: dict, folder) -> dict[str, str]:
    """name -> a line that must be refused, each built from a good record."""
    vector = record["vector"]
    return {
        "beyond float32": _line(record, vector=[1e39] + vector[1:]),
        "beyond float64": _line(record, vector=vector[:-1]).replace('"vector": [', '"vector": [1e400, '),
        "2**70": _line(record, vector=[2**70] + vector[1:]),
        "NaN duration": _line(record).replace('"duration": ', '"duration": NaN, "x": '),
        "Infinity length": _line(record).replace('"duration": ', '"length": Infinity, "duration": '),
        "NUL in path": _line(record, path=str(folder / "a\x00b.wav")),
        "lone surrogate": _line(record, path=str(folder / "a\ud800b.wav")),
        "deep nesting": "[" * 100_000 + "]" * 100_000,
        "1e30 score": _line(record, vector=[1e30] + vector[1:]),
        "negative score": _line(record, vector=[-5.0] + vector[1:]),
        "short vector": _line(record, vector=vector[:-1]),
        "a folder": _line(record, path=str(folder)),
        "huge line": _line(record, title="x" * 2_000_000),
        "not JSON": "this is not JSON",
        "boolean vector": _line(record, vector=[True] + vector[1:]),
        "string duration": _line(record, duration="30"),
        "all zeros": _line(record, vector=[0.0] * len(vector)),
        "a name no file system holds": _line(record, path=str(folder / ("x" * 300 + ".wav"))),
    }


def test_bad_lines_are_reported_and_the_good_ones_stored(qbsd, tagged, tmp_path):
    home, files, records = tagged
    bad = _bad_lines(records[0], home / "music")
    lines = [_line(records[0])] + list(bad.values()) + [_line(records[1]), _line(records[2])]
    data = "\n".join(lines).encode() + b"\n\xff\xfe not UTF-8\n"
    index = tmp_path / "index"
    result = qbsd("index", "--from-jsonl", "-", index=index, input=data)
    assert result.returncode == 1, result
    assert_no_traceback(result)
    complaints = [line for line in result.err_lines if line.startswith("qbsd: stdin:")]
    assert [int(line.split(":")[2]) for line in complaints] == list(range(2, len(bad) + 2)) + [len(lines) + 1]
    assert all(len(line) < 400 for line in complaints)
    assert "added 3," in result.stderr and f"failed {len(bad) + 1}," in result.stderr
    # nothing bad reached the store: every listing works and holds the three good songs
    for listing in (["search", "calm", "--format", "json"], ["search", "calm", "--format", "m3u"]):
        shown = qbsd(*listing, index=index)
        assert shown.returncode == 0, shown
    songs = qbsd("search", "calm", "--format", "json", index=index).json()
    assert sorted(song["path"] for song in songs) == sorted(str(path) for path in files)
    assert all(0.0 <= song["score"] <= 1.0 for song in songs)
    assert qbsd("index", "--duplicates", index=index).returncode == 0


def test_a_line_naming_a_fifo_fails_at_once(qbsd_process, tagged, tmp_path):
    _home, _files, records = tagged
    fifo = tmp_path / "song.wav"
    os.mkfifo(fifo)
    data = _line(records[0], path=str(fifo)) + "\n" + _line(records[1]) + "\n"
    result = qbsd_process("index", "--from-jsonl", "-", index=tmp_path / "index", input=data, timeout=60)
    assert result.returncode == 1, result
    assert "stdin:1:" in result.stderr and "FIFO" in result.stderr
    assert "added 1," in result.stderr


def test_a_jsonl_file_that_is_a_fifo_is_refused(qbsd, tmp_path):
    fifo = tmp_path / "lines.jsonl"
    os.mkfifo(fifo)
    result = qbsd("index", "--from-jsonl", fifo, index=tmp_path / "index")
    assert result.returncode == 2, result
    assert "FIFO" in result.stderr


def test_the_same_path_twice_is_one_song(qbsd, tagged, tmp_path):
    _home, _files, records = tagged
    data = f"{_line(records[0])}\n{_line(records[0], title='Later')}\n"
    result = qbsd("index", "--from-jsonl", "-", index=tmp_path / "index", input=data)
    assert result.returncode == 0, result
    assert "added 1, updated 0," in result.stderr
    [song] = qbsd("search", "calm", "--format", "json", index=tmp_path / "index").json()
    assert song["title"] == "Later"  # the later line wins


def test_a_non_utf8_name_survives_the_pipe(qbsd_process, tmp_path):
    music = tmp_path / "music"
    song = os.path.join(os.fsencode(music), b"caf\xff \x1b[2J\n.wav")
    write_chord(music / "plain.wav")
    os.rename(write_chord(music / "tmp.wav", frequencies=(440.0, 660.0)), song)
    script = (
        f"printf '%s\\n' {music}/plain.wav | qbsd tag --vector > lines.jsonl && "
        f"qbsd tag --vector -- {music}/caf*.wav >> lines.jsonl && "
        f"qbsd index --from-jsonl - --index idx < lines.jsonl && "
        f"qbsd search calm --keep-duplicates --format m3u --index idx"
    )
    result = qbsd_process.shell(script)
    assert result.returncode == 0, result
    entries = [line for line in result.stdout.split("\n") if line and not line.startswith("#")]
    resolved = {unquote_to_bytes(e[len("file://") :]) if e.startswith("file://") else os.fsencode(e) for e in entries}
    assert resolved == {song, os.fsencode(music / "plain.wav")}
    stored = qbsd_process("search", "calm", "--format", "json", index=qbsd_process.home / "idx").json()
    assert song in {os.fsencode(record["path"]) for record in stored}  # JSON: \\udcff, the same byte


@pytest.mark.parametrize(
    "line",
    [
        '{"path": "a.wav", "model": "m", "vector": [1e39]}',
        '{"path": "a.wav", "model": "m", "vector": [-1]}',
        "[" * 50_000,
        '{"path": "a.wav", "model": "m", "vector": [NaN]}',
        "not json",
    ],
    ids=["beyond-float32", "negative", "deep", "nan", "not-json"],
)
def test_a_bad_query_line_is_a_usage_error(qbsd, tagged, tmp_path, line):
    _home, _files, records = tagged
    index = tmp_path / "index"
    data = "\n".join(_line(record) for record in records) + "\n"
    assert qbsd("index", "--from-jsonl", "-", index=index, input=data).returncode == 0
    result = qbsd("similar", "-", index=index, input=line + "\n")
    assert result.returncode == 2, result
    assert_no_traceback(result)
    [message] = result.err_lines
    assert message.startswith("qbsd: stdin:1: ")


def test_an_endless_line_is_refused_without_holding_it(qbsd, tagged, tmp_path):
    """Five megabytes of NULs on one line (as from /dev/zero) are one bad line, read a
    bounded piece at a time; the next line is stored."""
    _home, _files, records = tagged
    data = b"\0" * 5_000_000 + b"\n" + _line(records[0]).encode() + b"\n"
    result = qbsd("index", "--from-jsonl", "-", index=tmp_path / "index", input=data)
    assert result.returncode == 1, result
    [complaint] = [line for line in result.err_lines if line.startswith("qbsd: stdin:1:")]
    assert "more than a record can be" in complaint
    assert "added 1," in result.stderr


def test_a_line_of_another_model_is_one_failure(qbsd, tagged, tmp_path):
    from helpers import model_with_another_id

    _home, files, records = tagged
    _ours, other_id, _copy = model_with_another_id(qbsd, tmp_path)
    data = "\n".join([_line(records[0]), _line(records[1], model=other_id), _line(records[2])]) + "\n"
    result = qbsd("index", "--from-jsonl", "-", index=tmp_path / "index", input=data)
    assert result.returncode == 1, result
    [complaint] = [line for line in result.err_lines if line.startswith("qbsd: stdin:")]
    assert complaint.startswith("qbsd: stdin:2: ") and other_id in complaint
    assert "added 2," in result.stderr and "failed 1," in result.stderr
    songs = qbsd("search", "calm", "--format", "json", index=tmp_path / "index").json()
    assert sorted(song["path"] for song in songs) == sorted([str(files[0]), str(files[2])])
