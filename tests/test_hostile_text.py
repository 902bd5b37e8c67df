"""Hostile text in tags and file names: shown safely, never injected, never hidden.

Real files made here: FLAC files whose Vorbis comments hold terminal escape sequences
(clear screen, window title, OSC 52 clipboard, OSC 8 hyperlinks), rich markup, line
breaks, a 200 KB title and invalid UTF-8; file names with line breaks, brackets, leading
dashes, control characters and undecodable bytes. Every output a person or a player reads
(tables, error lines, `index --errors`, m3u) must carry no control character but newline
and tab, keep brackets as they are, stay small, and name each file so that it resolves.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
import soundfile
from helpers import InProcessQbsd, assert_no_traceback

ESCAPES = "\x1b[2J\x1b[H\x1b]0;owned title\x07"  # clear screen, cursor home, window title
CLIPBOARD = "\x1b]52;c;ZWNobyBvd25lZA==\x07"  # OSC 52: write the clipboard
HYPERLINK = "\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07"  # OSC 8
C1_CSI = "\x9b31m"  # the one-byte CSI of C1
HUGE = "long title " * 20_000  # 220 KB
PLACEHOLDER = b"PLACEHOLDER-TITLE"  # patched into invalid UTF-8 after writing

#: (file name, artist, album, title): each file a different sound, so none is a duplicate
SONGS = [
    ("escapes.flac", ESCAPES + "Artist", CLIPBOARD + "Album", HYPERLINK),
    ("[live] song.flac", "[bold red]Markup[/]", "[/]", "[2005] Album/[Remastered 2011]"),
    ("line\nbreak #EXTINF:1,evil\nhttp:__evil.flac", "Multi\nline", "Album\r\nX", "Title\n#EXTINF:9,Injected"),
    ("-leading-dash.flac", "-v", "--rebuild", "-x"),
    ("huge.flac", "Huge", "Huge", HUGE),
    ("c1\x9b31m\x1b[31mred.flac", C1_CSI + "C1", "\u202eevil bidi", "zero\u200bwidth"),
    ("bad-utf8.flac", "Invalid", "UTF-8", PLACEHOLDER.decode()),
]
NON_UTF8_NAME = b"caf\xff\xfe.flac"


def _write_song(path: Path | bytes, frequency: float, artist: str, album: str, title: str) -> None:
    t = np.arange(int(3.5 * 22050)) / 22050
    signal = (0.3 * np.sin(2 * np.pi * frequency * t) * np.sin(2 * np.pi * (frequency / 97) * t)).astype(np.float32)
    with soundfile.SoundFile(path, "w", 22050, 1, format="FLAC") as handle:
        handle.artist, handle.album, handle.title = artist, album, title
        handle.write(signal)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A folder of hostile files, indexed; with a broken file of a hostile name."""
    home = tmp_path_factory.mktemp("hostile")
    music = home / "music"
    music.mkdir()
    for number, (name, artist, album, title) in enumerate(SONGS):
        _write_song(music / name, 180.0 * 1.37**number, artist, album, title)
    raw, invalid = (music / "bad-utf8.flac").read_bytes(), b"bad\xff\xfe\x1b[2J-utf8-xy"
    assert len(invalid) == len(PLACEHOLDER)  # FLAC's tag block keeps its length
    (music / "bad-utf8.flac").write_bytes(raw.replace(PLACEHOLDER, invalid))
    _write_song(os.path.join(os.fsencode(music), NON_UTF8_NAME), 2500.0, "Caf\xe9", "Album", "Caf\xe9")
    (music / "\x1b]0;evil\x07broken\n.mp3").write_bytes(b"\x1b]0;not audio\x07\n" * 50)
    qbsd = InProcessQbsd(home / "home")
    index = home / "index"
    indexed = qbsd("index", music, index=index)
    return qbsd, music, index, indexed


def _unsafe_characters(text: str) -> list[str]:
    """Control and format characters a terminal acts on or hides text with (newline and tab
    are allowed: tables and lines need them)."""
    return [
        char
        for char in text
        if char not in "\n\t" and (unicodedata.category(char) in ("Cc", "Cf", "Cs") or char in "\u2028\u2029")
    ]


def _songs(qbsd, index) -> list[dict]:
    result = qbsd("search", "calm", "--top", "50", "--keep-duplicates", "--format", "json", index=index)
    assert result.returncode == 0, result
    return result.json()


def test_the_hostile_files_are_indexed_and_the_broken_one_reported_safely(hostile):
    _qbsd, _music, _index, indexed = hostile
    assert indexed.returncode == 1, indexed  # the broken file
    assert_no_traceback(indexed)
    assert _unsafe_characters(indexed.stderr) == [], indexed.stderr
    [complaint] = [line for line in indexed.err_lines if line.startswith("qbsd: ")]
    assert "\\x1b]0;evil\\x07broken\\n.mp3" in complaint


def test_json_keeps_every_path_and_name_exactly(hostile):
    qbsd, music, index, _ = hostile
    records = _songs(qbsd, index)
    assert len(records) == len(SONGS) + 1
    assert _unsafe_characters(qbsd("search", "calm", "--format", "json", index=index).stdout) == []
    for record in records:
        assert os.path.isfile(os.fsencode(record["path"])), record["path"]  # lossless, \udcNN included
    by_name = {os.path.basename(record["path"]): record for record in records}
    assert by_name["[live] song.flac"]["artist"] == "[bold red]Markup[/]"
    assert by_name["escapes.flac"]["title"] == HYPERLINK
    assert len(by_name["huge.flac"]["title"]) == 1000  # stored with the documented cap
    assert by_name["huge.flac"]["title"].endswith("…")
    assert os.fsdecode(NON_UTF8_NAME) in by_name


def test_tables_show_every_song_safely_and_briefly(hostile):
    qbsd, _music, index, _ = hostile
    result = qbsd("search", "calm", "--top", "50", "--keep-duplicates", "--format", "table", index=index)
    assert result.returncode == 0, result
    assert _unsafe_characters(result.stdout) == [], result.stdout[:2000]
    flat = "".join(result.stdout.split())  # rich folds long cells over several lines
    assert "[live]song.flac" in flat  # brackets are text, not markup
    assert "[bold" in flat and "[/]" in flat
    assert "\\x1b]8;;http://evil.example/\\x07" in flat  # made visible, not obeyed
    assert "caf\\xff\\xfe.flac" in flat
    assert len(result.stdout) < 60_000  # the 220 KB title is cut, not padded into every row
    assert "long title long title" in result.stdout


def test_error_listing_is_safe_in_both_formats(hostile):
    qbsd, _music, index, _ = hostile
    plain = qbsd("index", "--errors", "--format", "table", index=index)
    assert plain.returncode == 0, plain
    assert _unsafe_characters(plain.stdout) == []
    assert len(plain.lines) == 1 and "broken\\n.mp3" in plain.stdout
    [record] = qbsd("index", "--errors", "--format", "json", index=index).json()
    assert os.path.basename(record["path"]) == "\x1b]0;evil\x07broken\n.mp3"  # JSON keeps the value


def _m3u_entries(text: str) -> list[bytes]:
    """The file each entry of an m3u names, as path bytes (file:// URIs decoded)."""
    entries = []
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        entries.append(unquote_to_bytes(line[len("file://") :]) if line.startswith("file://") else os.fsencode(line))
    return entries


def test_m3u_entries_resolve_to_the_files_and_inject_nothing(hostile):
    qbsd, _music, index, _ = hostile
    songs = _songs(qbsd, index)
    result = qbsd("search", "calm", "--top", "50", "--keep-duplicates", "--format", "m3u", index=index)
    assert result.returncode == 0, result
    assert _unsafe_characters(result.stdout) == []
    lines = result.stdout.split("\n")
    extinf = [line for line in lines if line.startswith("#EXTINF")]
    assert len(extinf) == len(songs)  # no injected entry
    assert all(len(line) < 500 for line in extinf)
    assert _m3u_entries(result.stdout) == [os.fsencode(song["path"]) for song in songs]
    assert not any(line.startswith("http") for line in lines)


def test_a_song_with_hostile_tags_is_found_by_similar_and_shown_safely(hostile):
    qbsd, music, index, _ = hostile
    result = qbsd("similar", music / "escapes.flac", "--format", "table", "--explain", index=index)
    assert result.returncode == 0, result
    assert _unsafe_characters(result.stdout) == []
    title = qbsd("similar", music / "[live] song.flac", "--format", "table", index=index)
    assert title.returncode == 0, title  # a path with brackets in the title line is no markup
    assert "[live]" in title.stdout
