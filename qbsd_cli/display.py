"""The one place where untrusted text becomes text shown to a person.

Titles, artists, albums, file names and the reasons that quote them come from files and
JSON lines that anyone may have written. Shown raw, they could drive the terminal (ESC
sequences clear the screen, set the window title, write the clipboard with OSC 52, plant
OSC 8 hyperlinks), break a table (a newline, rich markup such as `[/]`), or hang it (a
200 KB title padding every row). Everything qbsd prints for a person (tables, `qbsd: PATH:
reason` lines, `index --errors`, the `#EXTINF` names of a playlist) goes through
`shown` here, which

- makes control characters visible as escapes (`\\n`, `\\t`, `\\x1b`, `\\x9b`): C0, DEL, C1,
  and the invisible format characters that reorder or hide text (bidirectional overrides
  and isolates, zero-width joiners, line and paragraph separators, the byte-order mark);
- shows the undecodable bytes of a non-UTF-8 file name (surrogate escapes, as
  `os.fsdecode` gives them) as `\\xNN`;
- cuts a field longer than its limit, ending it with an ellipsis.

Rich markup is never parsed in such text: tables receive `rich.text.Text` objects, and
`markup_safe` escapes what goes into a markup string. JSON output keeps the stored value
(records.dumps escapes the same characters as JSON escapes, which a JSON reader undoes).
"""

from __future__ import annotations

import re

#: Characters shown on one line, at most, for a tag field (artist, album, title) in a
#: table or an `#EXTINF` line; the stored value may be longer (songinfo.MAX_TAG_CHARS).
FIELD_LIMIT = 200
#: For a path in a table or an error line: longer than any real path (PATH_MAX is 4,096
#: bytes), so only a hostile one is cut.
PATH_LIMIT = 4096
#: For a failure's reason (decoders' messages quote names and headers).
REASON_LIMIT = 1000
ELLIPSIS = "…"

# Every control (Cc: C0, DEL, C1), format (Cf: bidirectional overrides and isolates,
# zero-width characters, the soft hyphen, the BOM, the Unicode tag characters that can smuggle
# hidden text), line and paragraph separator (Zl, Zp) and surrogate (Cs) code point of
# Python 3.11's Unicode database, as ranges (tests/test_display_property.py checks the list
# against unicodedata, so a newer database that adds one fails there).
UNSAFE_CHARACTERS = _UNSAFE = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a file name's undecodable byte, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(text: object, limit: int = FIELD_LIMIT) -> str:
    """`text` as safe, visible, one-line text of at most `limit` characters (see the
    module's docstring). Anything not a str is shown as its str()."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) > 4 * limit + 64:  # escapes at most quadruple a character: cut before escaping
        text = text[: 4 * limit + 64]
    safe = _UNSAFE.sub(_escape, text)
    if len(safe) > limit:
        safe = safe[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS
    return safe


def shown_path(path: str) -> str:
    """A path as it is shown to a person (see `shown`); PATH_LIMIT cuts only hostile ones."""
    return shown(path, PATH_LIMIT)


def shown_reason(reason: str) -> str:
    """A failure's reason as it is shown (it may quote a file's name or header)."""
    return shown(reason, REASON_LIMIT)


def one_line(text: str, limit: int = FIELD_LIMIT) -> str:
    """`text` with its runs of whitespace (newlines included) made one space, then made
    safe: for an `#EXTINF` name, where an escape sequence would read worse than a space."""
    return shown(" ".join(str(text).split()), limit)


def markup_safe(text: str) -> str:
    """`shown` text escaped for a rich markup string (`[live] x.mp3` stays as it is)."""
    from rich.markup import escape

    return escape(text)


def has_unsafe(text: str) -> bool:
    """Whether `text` holds a character `shown` would escape."""
    return _UNSAFE.search(text) is not None
