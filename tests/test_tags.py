"""`qbsd tags`: the model's vocabulary, one tag per line."""

from __future__ import annotations

import re


def test_lists_the_vocabulary(qbsd):
    result = qbsd("tags")
    assert result.returncode == 0, result
    names = result.lines
    assert len(names) == len(set(names)) > 4
    assert all(re.fullmatch(r"[a-z]+:\S.*", name) for name in names), names
    for expected in ("quadrant:q1", "quadrant:q2", "quadrant:q3", "quadrant:q4", "mood:calm", "genre:pop/rock"):
        assert expected in names
    categories = {name.split(":", 1)[0] for name in names}
    assert {"mood", "genre", "quadrant"} <= categories
    assert result.stderr == ""


def test_verbose_names_the_model_on_stderr(qbsd):
    plain = qbsd("tags")
    verbose = qbsd("tags", "--verbose")
    assert verbose.returncode == 0, verbose
    assert verbose.stdout == plain.stdout  # results unchanged; the note is on stderr only
    [note] = verbose.err_lines
    match = re.match(r"model (\S+), (\d+) tags, (.+)$", note)
    assert match, note
    assert int(match.group(2)) == len(plain.lines)
    assert match.group(1) not in plain.stdout


def test_model_id_matches_tag_output(qbsd, make_audio):
    verbose = qbsd("tags", "-v")
    model_id = re.match(r"model (\S+),", verbose.stderr).group(1)
    tagged = qbsd("tag", "--top", "1", make_audio.chord())
    assert tagged.returncode == 0, tagged
    assert tagged.json()[0]["model"] == model_id
