"""A playlist as a query: `qbsd similar mix.m3u` takes its songs as seeds (m3u and m3u8,
relative entries against the playlist's folder, #EXTINF ignored, file:// URIs decoded,
missing entries named on stderr), `--not` takes one too, and `--format m3u` gives more
like the playlist without repeating its songs."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from helpers import assert_no_traceback


def _entries(m3u: str) -> list[str]:
    return [line for line in m3u.splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def songs(library):
    return sorted(str(path) for path in library.files)


def test_a_playlist_is_its_songs_as_seeds(library, songs, tmp_path):
    qbsd, index = library.qbsd, library.index
    first, second = library.real[0], library.real[1]
    mix = first.parent / "mix.m3u8"  # entries relative to the playlist's folder
    mix.write_text(f"#EXTM3U\n#EXTINF:30,Someone - Something\n{first.name}\n\n#EXTINF:-1,x\n{second}\n")
    try:
        by_playlist = qbsd("similar", mix, "--top", "4", "--format", "json", index=index)
        by_files = qbsd("similar", first, second, "--top", "4", "--format", "json", index=index)
        assert by_playlist.returncode == 0, by_playlist
        assert by_playlist.json() == by_files.json()
        more = qbsd("similar", mix, "--top", "20", "--format", "m3u", index=index)
        assert more.returncode == 0, more
        listed = _entries(more.stdout)
        assert str(first) not in listed and str(second) not in listed  # never repeats the playlist
        assert len(listed) == len(songs) - 2
    finally:
        mix.unlink()


def test_missing_entries_are_named_and_left_out(library, tmp_path):
    qbsd, index = library.qbsd, library.index
    song = library.real[2]
    mix = tmp_path / "mix.m3u"
    uri = "file://" + quote(os.fsencode(str(song)))
    mix.write_text(f"{tmp_path / 'gone.mp3'}\nhttp://example.org/stream.mp3\n{uri}\n{tmp_path}\n")
    result = qbsd("similar", mix, "--top", "3", "--format", "json", index=index)
    assert result.returncode == 0, result
    assert_no_traceback(result)
    named = [line for line in result.err_lines if line.startswith("qbsd: ")]
    assert len(named) == 3 and all("left out" in line for line in named), result.stderr
    assert str(song) not in [record["path"] for record in result.json()]  # the URI's song is the seed


def test_not_takes_a_playlist(library):
    qbsd, index = library.qbsd, library.index
    seed, avoided = library.real[0], library.real[3]
    away = avoided.parent / "away.m3u"
    away.write_text(f"{avoided.name}\n")
    try:
        result = qbsd("similar", seed, "--not", away, "--top", "10", "--format", "json", index=index)
        plain = qbsd("similar", seed, "--not", avoided, "--top", "10", "--format", "json", index=index)
        assert result.returncode == 0, result
        assert result.json() == plain.json()
        assert str(avoided) not in [record["path"] for record in result.json()]
    finally:
        away.unlink()


@pytest.mark.parametrize(
    "content", ["", "#EXTM3U\n#EXTINF:1,x\n", "/nowhere/a.mp3\n"], ids=["empty", "no-entry", "none-here"]
)
def test_a_playlist_with_no_readable_song_is_one_line(library, tmp_path, content):
    qbsd, index = library.qbsd, library.index
    mix = tmp_path / "mix.m3u"
    mix.write_text(content)
    result = qbsd("similar", mix, index=index)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    assert result.err_lines[-1] == f"qbsd: {mix}: the playlist names no song that is a file here"
    assert result.stdout == ""


def test_a_playlist_that_is_not_a_file(library, tmp_path):
    qbsd, index = library.qbsd, library.index
    fifo = tmp_path / "mix.m3u"
    os.mkfifo(fifo)
    result = qbsd("similar", fifo, index=index)
    assert result.returncode == 2, result
    assert "FIFO" in result.stderr
