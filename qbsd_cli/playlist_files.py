"""Reading m3u / m3u8 playlists given as query songs (`qbsd similar mix.m3u`), once, at the
edge, into the paths they name.

A playlist is untrusted text from anywhere: it is read only when it is a regular file of at
most MAX_PLAYLIST_BYTES; each line that is neither empty nor a comment (`#EXTM3U`,
`#EXTINF:...`) names a song: a path (relative ones against the playlist's own folder) or a
`file://` URI (percent-encoded bytes, as qbsd writes a name that cannot be one safe line).
Lines are bytes: a non-UTF-8 name keeps its bytes (surrogate escapes, as `os.fsdecode`
gives). An entry that is not a regular file here (missing, a folder, a FIFO, a URL of
another scheme) is listed in `missing` with the reason, for the caller to name on stderr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlsplit

from .errors import AudioError, UsageError

PLAYLIST_EXTENSIONS = (".m3u", ".m3u8")
#: A playlist of a million songs is about 100 MB; a query needs far fewer.
MAX_PLAYLIST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Playlist:
    """The songs a playlist names that are regular files here (absolute paths, in order,
    each once) and the entries that are not: (entry as written, reason)."""

    path: str
    songs: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)


def is_playlist(argument: str) -> bool:
    """Whether a query argument names an m3u / m3u8 playlist (by its extension)."""
    return argument.lower().endswith(PLAYLIST_EXTENSIONS)


def _entry_path(line: bytes, folder: bytes) -> bytes | None:
    """The path bytes an entry names, or None for a URL of another scheme than file."""
    if line[:7].lower() == b"file://":
        parts = urlsplit(line.decode("ascii", "replace"))
        if parts.netloc not in ("", "localhost"):
            return None
        return unquote_to_bytes(line[7 + len(parts.netloc) :].split(b"?")[0].split(b"#")[0])
    if b"://" in line[:16]:
        return None
    return line if line.startswith(b"/") else os.path.join(folder, line)


def read_m3u(path: str) -> Playlist:
    """The songs of the playlist at `path` (see the module's docstring). Raises UsageError
    when the playlist itself cannot be read."""
    from .audio import regular_file  # numpy: not for `qbsd --help`, which imports this module

    try:
        size = regular_file(path).st_size
    except AudioError as problem:
        raise UsageError(f"{path}: {problem}") from None
    if size > MAX_PLAYLIST_BYTES:
        raise UsageError(f"{path}: a playlist of {size} bytes is more than qbsd reads ({MAX_PLAYLIST_BYTES})")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PLAYLIST_BYTES + 1)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    folder = os.path.dirname(os.path.abspath(os.fsencode(path)))
    playlist = Playlist(path)
    seen: set[bytes] = set()
    for raw in data.removeprefix(b"\xef\xbb\xbf").splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        entry = os.fsdecode(line)
        target = _entry_path(line, folder)
        if target is None:
            playlist.missing.append((entry, "not a local file (only paths and file:// URIs are read)"))
            continue
        target = os.path.normpath(target)
        try:
            regular_file(os.fsdecode(target))
        except (AudioError, ValueError) as problem:
            playlist.missing.append((entry, str(problem)))
            continue
        if target not in seen:
            seen.add(target)
            playlist.songs.append(os.fsdecode(target))
    return playlist
