"""Property: whatever text a song's tags and path hold, the table, m3u, JSON and error
output carry no control character but newline and tab (so none can drive a terminal), and
every m3u entry names exactly the file it stands for."""

from __future__ import annotations

import contextlib
import io
import json
import os
import unicodedata
from urllib.parse import unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st

from qbsd_cli.output import OutputFormat, error, ranking_output

# any text, surrogates of undecodable bytes included, as file names and tags really hold
_text = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda raw: os.fsdecode(raw)),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2070), max_size=60),
)
_path = st.binary(min_size=1, max_size=80).map(
    lambda raw: os.path.abspath(os.fsdecode(b"/music/" + raw.replace(b"\0", b"_")))
)


def _controls(text: str) -> list[str]:
    return [c for c in text if c not in "\n\t" and (unicodedata.category(c) == "Cc" or "\ud800" <= c <= "\udfff")]


def _printed(records: list[dict], output_format: OutputFormat) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        ranking_output(records, output_format, "like " + records[0]["path"], explain=True)
    return buffer.getvalue()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"path": _path, "artist": _text, "album": _text, "title": _text, "length": st.floats(1, 1e4)}
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda record: record["path"],
    ),
    _text,
)
def test_no_control_character_reaches_any_output(songs, reason):
    records = [
        {"rank": rank, "score": 0.5, **song, "because": [{"tag": "mood:calm", "score": 0.5, "query": 1.0}]}
        for rank, song in enumerate(songs, 1)
    ]
    table = _printed(records, OutputFormat.table)
    m3u = _printed(records, OutputFormat.m3u)
    lines = _printed(records, OutputFormat.json)
    assert _controls(table) == [] and _controls(m3u) == [] and _controls(lines) == []
    # JSON keeps every value exactly
    assert [json.loads(line) for line in lines.splitlines()] == records
    # one entry per song, each resolving to its file
    entries = [line for line in m3u.split("\n") if line and not line.startswith("#")]
    named = [unquote_to_bytes(e[len("file://") :]) if e.startswith("file://") else os.fsencode(e) for e in entries]
    assert named == [os.fsencode(record["path"]) for record in records]
    assert sum(line.startswith("#EXTINF:") for line in m3u.split("\n")) == len(records)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        error(records[0]["path"], reason)
    assert _controls(stderr.getvalue()) == []
    assert stderr.getvalue().count("\n") == 1


def test_every_control_and_format_character_is_made_visible():
    """display.UNSAFE_CHARACTERS lists every Cc, Cf, Zl, Zp and Cs code point (the Unicode
    tag characters that smuggle hidden text included); a newer Unicode database that adds
    one fails here."""
    from qbsd_cli.display import UNSAFE_CHARACTERS, shown
    from qbsd_cli.records import dumps

    categories = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    missing = [hex(c) for c in range(0x110000) if unicodedata.category(chr(c)) in categories]
    missing = [code for code in missing if not UNSAFE_CHARACTERS.match(chr(int(code, 16)))]
    assert missing == []
    hidden = "Nice Song" + "".join(chr(0xE0000 + ord(c)) for c in "ignore me")
    assert shown(hidden).startswith("Nice Song\\U000e0069")
    assert json.loads(dumps({"title": hidden})) == {"title": hidden}  # JSON keeps it, escaped
    assert "\U000e0069" not in dumps({"title": hidden})
