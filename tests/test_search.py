"""`qbsd search WORDS`: the songs in the index that best fit some tags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import assert_no_traceback


@pytest.fixture(scope="session")
def vocabulary(library) -> list[str]:
    result = library.qbsd("tags")
    assert result.returncode == 0, result
    return result.lines


@pytest.fixture(scope="session")
def scores(library) -> dict[str, dict[str, float]]:
    """path -> tag -> score, from `qbsd tag --top 0` on every song of the library."""
    result = library.qbsd("tag", "--top", "0", *library.files)
    assert result.returncode == 0, result
    return {r["path"]: {e["tag"]: e["score"] for e in r["tags"]} for r in result.json()}


def search(library, *words, top=20) -> list[dict]:
    result = library.qbsd("search", *words, "--top", str(top), "--format", "json", index=library.index)
    assert result.returncode == 0, result
    records = result.json()
    assert [r["rank"] for r in records] == list(range(1, len(records) + 1))
    return records


def expected_ranking(scores, tags: list[str]) -> list[tuple[str, float]]:
    mean = {path: sum(by_tag[t] for t in tags) / len(tags) for path, by_tag in scores.items()}
    return sorted(mean.items(), key=lambda item: -item[1])


def assert_ranked_by(records, scores, tags):
    expected = expected_ranking(scores, tags)
    assert len(records) == len(expected)
    for record, (_path, score) in zip(records, expected):
        assert record["score"] == pytest.approx(score, abs=2e-4)
    got = {r["path"]: r["score"] for r in records}
    for path, score in expected:  # same songs, same scores (ties may swap places)
        assert got[path] == pytest.approx(score, abs=2e-4)
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)


def test_bare_word_ranks_songs_by_that_tag(library, scores):
    records = search(library, "calm")
    assert_ranked_by(records, scores, ["mood:calm"])


def test_full_tag_name_is_the_same_as_the_bare_word(library, vocabulary):
    if sum(name.split(":", 1)[1] == "calm" for name in vocabulary) != 1:
        pytest.skip("`calm` names more than one tag in this model")
    assert search(library, "mood:calm") == search(library, "calm")
    assert search(library, "MOOD:Calm") == search(library, "calm")


def test_top_limits_the_ranking(library):
    assert search(library, "calm", top=3) == search(library, "calm")[:3]


def test_several_words_use_the_mean_score(library, scores, vocabulary):
    for name in ("mood:calm", "quadrant:q2"):
        assert name in vocabulary
    records = search(library, "calm", "quadrant:q2")
    assert_ranked_by(records, scores, ["mood:calm", "quadrant:q2"])


def test_multi_word_tag_name(library, scores, vocabulary):
    if "genre:easy listening" not in vocabulary:
        pytest.skip("this model has no `genre:easy listening` tag")
    records = search(library, "easy", "listening")
    # the genre, and the teacher-derived style of the same name where the model has one
    named = [tag for tag in vocabulary if tag.split(":", 1)[1] == "easy listening"]
    assert_ranked_by(records, scores, named)
    assert search(library, "easy listening") == records  # one quoted argument


def test_m3u_playlist_to_a_file(library, tmp_path):
    playlist = tmp_path / "calm.m3u"
    result = library.qbsd.shell(f"qbsd search calm --top 4 --format m3u --index {library.index} > {playlist}")
    assert result.returncode == 0, result
    lines = playlist.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    assert len(lines) == 1 + 2 * 4
    paths = [r["path"] for r in search(library, "calm", top=4)]
    assert lines[2::2] == paths
    assert all(re.match(r"#EXTINF:\d+,\S", line) for line in lines[1::2])
    assert all(Path(p).is_file() for p in lines[2::2])


def test_unknown_word_suggests_tags(library):
    result = library.qbsd("search", "calmm", index=library.index)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    [message] = result.err_lines
    assert "calmm" in message
    assert "did you mean" in message
    assert "calm" in message.split("did you mean", 1)[1]
    assert result.stdout == ""


def test_unknown_word_among_known_ones(library):
    result = library.qbsd("search", "calm", "xyzzyq", index=library.index)
    assert result.returncode == 2, result
    assert "xyzzyq" in result.stderr
    assert "qbsd tags" in result.stderr or "did you mean" in result.stderr
    assert_no_traceback(result)
