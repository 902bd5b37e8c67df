"""`qbsd similar`: the songs in the index most like a song."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import AudioFactory, assert_no_traceback, model_with_another_id


def ranking(result) -> list[dict]:
    assert result.returncode == 0, result
    records = result.json()
    assert [r["rank"] for r in records] == list(range(1, len(records) + 1))
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0001 for s in scores)
    return records


def test_top_three_without_the_query(library):
    query = library.real[0]
    records = ranking(library.qbsd("similar", query, "--top", "3", index=library.index))
    assert len(records) == 3
    paths = [r["path"] for r in records]
    assert str(query) not in paths
    assert set(paths) <= {str(f) for f in library.files}
    assert len(set(paths)) == 3


def test_include_self_ranks_the_query_first(library):
    query = library.real[1]
    records = ranking(library.qbsd("similar", query, "--top", "3", "--include-self", index=library.index))
    assert records[0]["path"] == str(query)
    assert records[0]["score"] == pytest.approx(1.0, abs=1e-3)
    without = ranking(library.qbsd("similar", query, "--top", "2", index=library.index))
    assert [r["path"] for r in records[1:]] == [r["path"] for r in without]


def test_every_other_song_when_top_is_large(library):
    query = library.generated[0]
    records = ranking(library.qbsd("similar", query, "--top", "50", index=library.index))
    assert sorted(r["path"] for r in records) == sorted(str(f) for f in library.files if f != query)


def test_exact_agrees_with_index(library):
    query = library.real[2]
    default = ranking(library.qbsd("similar", query, "--top", "5", index=library.index))
    exact = ranking(library.qbsd("similar", query, "--top", "5", "--exact", index=library.index))
    assert [r["path"] for r in exact] == [r["path"] for r in default]


def test_vector_on_stdin_through_a_pipe(library):
    query = library.real[0]
    piped = library.qbsd.shell(f"qbsd tag --vector {query} | qbsd similar - --top 3 --index {library.index}")
    direct = library.qbsd("similar", query, "--top", "3", index=library.index)
    records = ranking(piped)
    assert [r["path"] for r in records] == [r["path"] for r in ranking(direct)]
    for a, b in zip(records, direct.json()):
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_query_file_outside_the_index(library, make_audio):
    outsider = make_audio.chord("outsider.flac", frequencies=(196.0, 246.94, 293.66), seconds=3.0)
    records = ranking(library.qbsd("similar", outsider, "--top", "4", index=library.index))
    assert len(records) == 4
    assert {r["path"] for r in records} <= {str(f) for f in library.files}


def test_json_table_and_m3u_formats(library):
    query = library.real[3]
    as_json = ranking(library.qbsd("similar", query, "--top", "3", "--format", "json", index=library.index))
    paths = [r["path"] for r in as_json]

    table = library.qbsd("similar", query, "--top", "3", "--format", "table", index=library.index)
    assert table.returncode == 0, table
    assert "score" in table.stdout
    for path in paths:  # the path column may wrap, but the file name is there
        assert Path(path).name[:12] in table.stdout
    assert not table.stdout.lstrip().startswith("{")

    m3u = library.qbsd("similar", query, "--top", "3", "--format", "m3u", index=library.index)
    assert m3u.returncode == 0, m3u
    lines = m3u.lines
    assert lines[0] == "#EXTM3U"
    # the library's files carry no tags: folder names stand in (songinfo), lengths are known
    expected = [f"#EXTINF:{round(r['length'])},{r['artist']} - {r['title']}" for r in as_json]
    assert lines[1::2][:3] == expected
    assert all(r["title"] == Path(r["path"]).stem for r in as_json)
    assert lines[2::2] == paths


def test_index_from_another_model_is_refused(qbsd, tmp_path):
    music = AudioFactory(tmp_path / "music")
    music.chord("chord.wav")
    music.noise("noise.flac")
    index = tmp_path / "index"
    built = qbsd("index", music.folder, index=index)
    assert built.returncode == 0, built

    model_id, other_id, other_model = model_with_another_id(qbsd, tmp_path)
    outsider = AudioFactory(tmp_path / "elsewhere").noise("outsider.wav", seed=7)
    env = {"QBSD_MODEL": str(other_model)}
    by_file = qbsd("similar", outsider, index=index, env=env)
    by_vector = qbsd.shell(f"QBSD_MODEL={other_model} qbsd tag --vector {outsider} | qbsd similar - --index {index}")
    from_jsonl = qbsd.shell(
        f"QBSD_MODEL={other_model} qbsd tag --vector {outsider} | qbsd index --from-jsonl - --index {index}"
    )
    music.chord("new.wav", frequencies=(261.63, 329.63, 392.0))
    reindex = qbsd("index", music.folder, index=index, env=env)
    for result in (by_file, by_vector, from_jsonl, reindex):
        assert result.returncode != 0, result
        assert_no_traceback(result)
        assert model_id in result.stderr and other_id in result.stderr, result
        assert result.stdout == ""
        # --from-jsonl refuses the line and goes on with the others: its summary follows
        assert len(result.err_lines) == (2 if result is from_jsonl else 1), result
    assert "added 0," in from_jsonl.err_lines[-1] and "failed 1," in from_jsonl.err_lines[-1]
    # the refused runs left the index as it was
    still = qbsd("search", "calm", "--top", "10", "--format", "json", index=index)
    assert sorted(r["path"] for r in still.json()) == [
        str(music.folder / "chord.wav"),
        str(music.folder / "noise.flac"),
    ]


def test_table_keeps_long_and_bracketed_names_whole(qbsd, make_audio, tmp_path):
    """A table piped to a file is as wide as its rows, and names are not read as rich markup."""
    deep = "a folder with a rather long name " * 3
    names = ["[live] first take.wav", "[bold]second[/bold].wav"]
    files = [make_audio.chord(f"{deep}/{name}", seconds=3.0) for name in names]
    index = tmp_path / "index"
    assert qbsd("index", make_audio.folder, index=index).returncode == 0
    # the two files are one chord, duplicates of each other: both are wanted here
    table = qbsd("similar", files[0], "--include-self", "--keep-duplicates", "--format", "table", index=index)
    assert table.returncode == 0, table
    for path in files:
        assert str(path) in table.stdout
