"""A song's artist, album, title and length: from the file's own tags, else from its folders.

libsndfile (through soundfile) reads the tags of the formats it decodes: Vorbis comments
in Ogg and FLAC, ID3 in MP3. Where a file has no artist, album or title of its own, the
folders it lies in stand in, counted from the folder that was indexed, in the usual
`Artist/Album/Track.ext` layout:

    ROOT/Artist/Album/Track.flac   artist "Artist", album "Album", title "Track"
    ROOT/Artist/Track.flac         artist "Artist", title "Track"
    ROOT/Track.flac                title "Track"
    ROOT/A/B/Artist/Album/T.flac   deeper: the two folders above the file

The title falls back to the file name without its extension. Without a root (a `--from-jsonl`
record, or a query file outside the index), only the title does; a record left without
artist or album that way is read again, folders included, by the next `qbsd index` of a
folder holding the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import TagRecord

#: Characters kept of an artist, album or title, from a file's tags or a JSON line: more
#: than any real name, and a bound on what a 200 KB title costs every listing that holds
#: it. A longer one is cut and ends with "…" (display.ELLIPSIS).
MAX_TAG_CHARS = 1000


@dataclass(frozen=True)
class SongInfo:
    """What a listener calls a song. `seconds` is the whole file's playing time (not the
    part analysed), None when unknown; `tagged` says the artist and title both came from
    the file's own tags (or a JSON record), so that "same artist and same title" may be
    trusted to mean the same recording, which a folder name cannot promise."""

    artist: str | None = None
    album: str | None = None
    title: str | None = None
    seconds: float | None = None
    tagged: bool = False
    #: False when the folder names could not be consulted (a `--from-jsonl` record, which
    #: has no root) and artist or album is still unknown: the next `qbsd index` of a
    #: folder holding the file reads it again, tags and folders.
    folders_read: bool = True
    #: The audio fingerprint of the file's first 30 s (fingerprint.py), as the index stores
    #: it (None: none stored, e.g. an index made before fingerprints). Not a name: it is
    #: carried here only so that the index hands it to duplicate detection with the names.
    fingerprint: bytes | None = field(default=None, compare=False, repr=False)


def _storable(text: str) -> str:
    """`text` as valid UTF-8 (SQLite TEXT and JSON need it): the surrogate escapes of a
    non-UTF-8 file or folder name become \\xNN, as qbsd shows paths (display.shown_path);
    a lone surrogate of another kind (a JSON line may carry one) becomes \\uNNNN."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    if len(text) > 2 * MAX_TAG_CHARS:  # cut before the work of splitting a huge one
        text = text[: 2 * MAX_TAG_CHARS]
    text = " ".join(_storable(text).split())
    if len(text) > MAX_TAG_CHARS:
        text = text[: MAX_TAG_CHARS - 1] + "…"
    return text or None


def capped(text: str | None) -> str | None:
    """A name as it is stored: valid UTF-8, whitespace runs made one space, at most
    MAX_TAG_CHARS characters; None for none."""
    return _clean(text)


def from_folders(path: str, root: str | None) -> SongInfo:
    """The folder-name rule alone (see the module's docstring)."""
    title = _clean(os.path.splitext(os.path.basename(path))[0])
    if root is None:
        return SongInfo(title=title)
    relative = os.path.relpath(os.path.dirname(os.path.abspath(path)), os.path.abspath(root))
    folders = [] if relative in (os.curdir, "") else [part for part in relative.split(os.sep) if part]
    if folders and folders[0] == os.pardir:  # not under the root after all
        folders = []
    artist = _clean(folders[-2]) if len(folders) >= 2 else (_clean(folders[-1]) if folders else None)
    album = _clean(folders[-1]) if len(folders) >= 2 else None
    return SongInfo(artist=artist, album=album, title=title)


def read_tags(path: str) -> SongInfo:
    """The file's own tags and length alone (None where it has none). Never raises: a file
    soundfile cannot open has none (a file qbsd can still decode through another decoder
    is analysed all the same). The analysis processes call it, the index's writer
    completes it with `completed` (the folder names need the indexed root)."""
    import soundfile

    from .audio import regular_file
    from .errors import AudioError

    try:  # the one check every path passes: a FIFO or a device is never opened
        regular_file(path)
    except AudioError:
        return SongInfo()
    try:
        # bytes: soundfile cannot encode the surrogate escapes of a non-UTF-8 name itself
        with soundfile.SoundFile(os.fsencode(path)) as audio:
            artist, album, title = _clean(audio.artist), _clean(audio.album), _clean(audio.title)
            seconds = audio.frames / audio.samplerate if audio.samplerate and audio.frames > 0 else None
    except Exception:  # soundfile raises LibsndfileError, RuntimeError or TypeError by format
        return SongInfo()
    return SongInfo(artist, album, title, seconds, tagged=bool(artist and title))


def completed(tags: SongInfo | None, path: str, root: str | None) -> SongInfo:
    """`tags` (read_tags of `path`) with the folder names under `root` where it has none."""
    tags = tags or SongInfo()
    fallback = from_folders(path, root)
    return SongInfo(
        artist=tags.artist or fallback.artist,
        album=tags.album or fallback.album,
        title=tags.title or fallback.title,
        seconds=tags.seconds,
        tagged=tags.tagged,
    )


def read_song_info(path: str, root: str | None = None) -> SongInfo:
    """The file's tags and length, completed by the folder names under `root`. Never raises."""
    return completed(read_tags(path), path, root)


def from_record(record: TagRecord, path: str, regular: bool) -> SongInfo:
    """A `--from-jsonl` record's own artist, album, title and length (records.parse checked
    them); the rest from the file when it is a regular file here (`regular`: its tags; the
    record has no root for folder names, hence folders_read), else the file name."""
    given = {"artist": _clean(record.artist), "album": _clean(record.album), "title": _clean(record.title)}
    read = read_song_info(path) if regular else from_folders(path, None)
    artist = given["artist"] or read.artist
    title = given["title"] or read.title
    album = given["album"] or read.album
    return SongInfo(
        artist=artist,
        album=album,
        title=title,
        seconds=record.length or read.seconds,
        tagged=bool(given["artist"] and given["title"]) or read.tagged,
        folders_read=bool(artist and album),
    )
