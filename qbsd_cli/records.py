"""The JSON lines of `qbsd tag`: written here, and read back here, once, with one strict check.

A record is one JSON object per line:

    {"path": "/music/a.flac", "duration": 30.0, "model": "qbsd-...", "artist": "...",
     "album": "...", "title": "...", "length": 241.3,
     "tags": [{"tag": "mood:calm", "score": 0.61}, ...], "vector": [0.01, ...],
     "fingerprint": "AQAQ..."}

`qbsd tag` writes them; `qbsd similar -` / `qbsd path -` read them as query songs and
`qbsd index --from-jsonl` stores them. Lines come from other machines and other people,
so each is checked before anything uses it (`parse`): a JSON object of at most
MAX_LINE_BYTES; "path" a non-empty file name (no NUL, at most PATH_MAX bytes);
"model" a non-empty string; "vector" a list of numbers, each finite and within 0..1 (the
models' sigmoid outputs: a value such as 1e30 or -5 would top or sink every search);
"duration" (seconds analysed) and "length" (seconds of playing time) finite and within
0..MAX_SECONDS; "artist", "album", "title" text or null (stored with songinfo's cap);
"tags" a list of {"tag": text, "score": 0..1}. NaN and Infinity, numbers beyond float64,
and nesting beyond Python's recursion limit are bad lines like any other. A bad line
raises RecordError with a one-line reason, which the callers turn into
`qbsd: SOURCE:LINE: reason` and go on with the other lines.

File names that are not valid UTF-8 round-trip losslessly: Python holds each undecodable
byte 0xNN of a name as the lone surrogate U+DCNN (`os.fsdecode`), and `dumps` writes it
as the JSON escape `\\udcNN`, which `parse` reads back to the same surrogate and
`os.fsencode` to the same byte. `dumps` also escapes DEL, the C1 controls and the invisible
format characters (display.UNSAFE_CHARACTERS) that JSON itself would leave raw, so a record
shown on a terminal cannot drive it; a JSON reader gets the same value back.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, NoReturn

from .display import UNSAFE_CHARACTERS

if TYPE_CHECKING:  # numpy is imported when a vector is read: writing a line (and --help) needs none
    import numpy as np

#: A record of the largest model with every tag is about 15 KB; a megabyte leaves room
#: for long names while refusing lines meant to exhaust memory or a terminal.
MAX_LINE_BYTES = 1 << 20
#: Linux's PATH_MAX: no real file name is longer.
MAX_PATH_BYTES = 4096
#: Linux's NAME_MAX: no file or folder name is longer.
MAX_NAME_BYTES = 255
#: Durations and lengths beyond this many seconds (115 days) are not songs.
MAX_SECONDS = 1e7

_FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


class RecordError(ValueError):
    """A line that is not a valid `qbsd tag` record; str() is the one-line reason."""


@dataclass(frozen=True)
class TagRecord:
    """One checked record. `vector` is float32 (n,) or None when the line had none;
    `duration` and `length` are seconds (length None when unknown); `path` is as written,
    undecodable bytes as surrogate escapes (module docstring)."""

    path: str
    model: str | None
    duration: float
    vector: np.ndarray | None
    artist: str | None = None
    album: str | None = None
    title: str | None = None
    length: float | None = None
    #: the audio fingerprint (fingerprint.py), None when absent or of a kind this qbsd does
    #: not read (it is evidence for duplicates only: a song is stored without it)
    fingerprint: bytes | None = None


# --------------------------------------------------------------------------- writing


def dumps(record: dict) -> str:
    """One JSON line for `record` (UTF-8 text; see the module's docstring for escapes).
    Raises ValueError for a NaN or infinite number: a record never holds one."""
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    # what json leaves raw of the characters a terminal acts on (display.UNSAFE_CHARACTERS:
    # DEL, C1, the invisible format characters) and the surrogates of undecodable bytes
    return UNSAFE_CHARACTERS.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    """A JSON escape of one character: \\uNNNN, or a surrogate pair above the BMP."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def tag_record(
    path: str,
    duration: float,
    model_id: str,
    top_tags: list[tuple[str, float]],
    names: dict[str, str | None],
    length: float | None,
    vector: np.ndarray | None = None,
    fingerprint: str | None = None,
) -> dict:
    """The record `qbsd tag` prints: path, duration, model; artist, album, title (`names`)
    and length (seconds) where known; tags; and vector when given."""
    record: dict = {"path": path, "duration": round(float(duration), 3), "model": model_id}
    for field in ("artist", "album", "title"):
        if names.get(field):
            record[field] = names[field]
    if length:
        record["length"] = round(float(length), 3)
    record["tags"] = [{"tag": name, "score": round(float(score), 4)} for name, score in top_tags]
    if vector is not None:
        record["vector"] = [round(float(value), 6) for value in vector]
    if fingerprint is not None:
        record["fingerprint"] = fingerprint
    return record


# --------------------------------------------------------------------------- reading


def _no_constants(name: str) -> NoReturn:
    raise RecordError(f"{name} is not a number JSON allows")


def _number(
    record: dict, field: str, low: float, high: float, *, required: bool, low_open: bool = False
) -> float | None:
    value = record.get(field)
    if value is None:
        if required:
            raise RecordError(f'no "{field}"')
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f'"{field}" is not a number')
    value = float(value) if abs(value) <= _FLOAT32_MAX else math.inf
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        raise RecordError(f'"{field}" is {record[field]!r:.40}, outside {low:g}..{high:g}')
    return value


def checked_path(value: object, field: str = "path") -> str:
    """`value` if it can name a file: non-empty text, no NUL, no surrogate that stands for
    no byte, at most MAX_PATH_BYTES bytes. Raises RecordError."""
    if not isinstance(value, str) or not value:
        raise RecordError(f'"{field}" is not a file name')
    if "\x00" in value:
        raise RecordError(f'"{field}" holds a NUL character, which no file name can')
    try:
        raw = os.fsencode(value)
    except UnicodeEncodeError:
        raise RecordError(f'"{field}" holds a lone surrogate that stands for no file-name byte') from None
    if len(raw) > MAX_PATH_BYTES:
        raise RecordError(f'"{field}" is {len(raw)} bytes long, longer than any file name ({MAX_PATH_BYTES})')
    if any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise RecordError(f'"{field}" has a name of more than {MAX_NAME_BYTES} bytes, which no file system holds')
    return value


def _text(record: dict, field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f'"{field}" is not text')
    return value  # lone surrogates (a folder's undecodable bytes) are stored as \\xNN (songinfo.capped)


def _vector(record: dict) -> np.ndarray | None:
    import numpy as np

    values = record.get("vector")
    if values is None:
        return None
    if not isinstance(values, list) or not values:
        raise RecordError('"vector" is not a list of numbers')
    if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in values):
        raise RecordError('"vector" is not a list of numbers')
    if any(not -_FLOAT32_MAX <= value <= _FLOAT32_MAX for value in values):  # NaN fails this too
        raise RecordError('"vector" has values that are not finite float32 numbers')
    vector = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(vector)):
        raise RecordError('"vector" has values that are not finite float32 numbers')
    if vector.min() < 0.0 or vector.max() > 1.0:
        raise RecordError('"vector" has scores outside 0..1, which no model gives')
    if not vector.any():
        raise RecordError('"vector" is all zeros, which no model gives (it would match nothing)')
    return vector.astype(np.float32)


def _fingerprint(record: dict) -> bytes | None:
    text = record.get("fingerprint")
    if text is None:
        return None
    if not isinstance(text, str):
        raise RecordError('"fingerprint" is not text')
    from .fingerprint import from_text

    return from_text(text)


def _tags(record: dict) -> None:
    tags = record.get("tags")
    if tags is None:
        return
    if not isinstance(tags, list):
        raise RecordError('"tags" is not a list')
    for entry in tags:
        if not isinstance(entry, dict) or not isinstance(entry.get("tag"), str):
            raise RecordError('"tags" holds an entry without a "tag" name')
        _number(entry, "score", 0.0, 1.0, required=True)


def parse(line: str | bytes, *, need_vector: bool = True, need_path: bool = True) -> TagRecord:
    """The checked record of one line (str, or bytes in UTF-8). need_path=False (a query
    song) lets "path" be empty or absent: a vector without a file. Raises RecordError."""
    if len(line) > MAX_LINE_BYTES:
        raise RecordError(f"the line is {len(line)} bytes long, more than a record can be ({MAX_LINE_BYTES})")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordError(f"not UTF-8 text (byte {error.start})") from None
    try:
        record = json.loads(line, parse_constant=_no_constants)
    except RecordError:
        raise
    except RecursionError:
        raise RecordError("not a `qbsd tag` record (nested too deeply)") from None
    except ValueError:  # JSONDecodeError, and integers of more digits than Python converts
        raise RecordError("not a JSON line from `qbsd tag`") from None
    if not isinstance(record, dict):
        raise RecordError("not a `qbsd tag` record (a JSON object with path, model and vector)")
    vector = _vector(record)
    if vector is None and need_vector:
        raise RecordError('the record has no "vector": use `qbsd tag --vector`')
    model = record.get("model")
    if vector is not None and (not isinstance(model, str) or not model):
        raise RecordError('"model" is not a model id')
    _tags(record)
    return TagRecord(
        fingerprint=_fingerprint(record),
        path=checked_path(record.get("path")) if need_path or record.get("path") else "",
        model=model if isinstance(model, str) else None,
        duration=_number(record, "duration", 0.0, MAX_SECONDS, required=False) or 0.0,
        vector=vector,
        artist=_text(record, "artist"),
        album=_text(record, "album"),
        title=_text(record, "title"),
        length=_number(record, "length", 0.0, MAX_SECONDS, required=False, low_open=True),
    )


def _bounded_lines(lines: IO[bytes] | IO[str] | Iterable[bytes | str]) -> Iterator[bytes | str]:
    """The lines of a stream, each read at most MAX_LINE_BYTES + 1 at a time: a longer line
    (say, /dev/zero) is given cut, which `parse` refuses, and the rest of it is skipped
    without being held in memory. Other iterables are taken as they are."""
    readline = getattr(lines, "readline", None)
    if readline is None:
        yield from lines
        return
    while line := readline(MAX_LINE_BYTES + 1):
        newline = b"\n" if isinstance(line, bytes) else "\n"
        if len(line) > MAX_LINE_BYTES and not line.endswith(newline):
            while (rest := readline(1 << 20)) and not rest.endswith(newline):
                pass
        yield line


def read(
    lines: IO[bytes] | IO[str] | Iterable[bytes | str], source: str, *, need_vector: bool = True, need_path: bool = True
) -> Iterator[tuple[str, TagRecord | RecordError]]:
    """(where, record or the RecordError of a bad line) for each non-blank line; `where` is
    `SOURCE:LINE` (SOURCE "stdin" for standard input), as error lines name it. A stream is
    read a bounded line at a time (_bounded_lines)."""
    for number, line in enumerate(_bounded_lines(lines), 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            yield where, parse(line, need_vector=need_vector, need_path=need_path)
        except RecordError as bad:
            yield where, bad
