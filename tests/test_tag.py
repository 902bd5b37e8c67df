"""`qbsd tag`: one JSON line per file, strongest tags first."""

from __future__ import annotations

import math
import re

import pytest
from helpers import InProcessQbsd, Qbsd, assert_no_traceback


@pytest.fixture(scope="module")
def module_qbsd(tmp_path_factory) -> Qbsd:
    return InProcessQbsd(tmp_path_factory.mktemp("tag") / "home")


@pytest.fixture(scope="module")
def vocabulary(module_qbsd) -> list[str]:
    result = module_qbsd("tags")
    assert result.returncode == 0, result
    return result.lines


@pytest.fixture(scope="module")
def model_id(module_qbsd) -> str:
    result = module_qbsd("tags", "--verbose")
    assert result.returncode == 0, result
    match = re.search(r"model (\S+),", result.stderr)
    assert match, result
    return match.group(1)


@pytest.fixture(scope="module")
def full_records(module_qbsd, clips) -> list[dict]:
    """Every tag and the vector of three clips, analysed one at a time (--jobs 1)."""
    result = module_qbsd("tag", "--top", "0", "--vector", "--jobs", "1", *clips[:3])
    assert result.returncode == 0, result
    return result.json()


def assert_sorted_by_score(tags: list[dict]) -> None:
    scores = [entry["score"] for entry in tags]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)


def test_one_json_line_per_file_sorted_by_score(module_qbsd, clips, vocabulary, model_id):
    files = clips[:2]
    result = module_qbsd("tag", *files)
    assert result.returncode == 0, result
    records = result.json()
    assert [record["path"] for record in records] == [str(f) for f in files]
    for record in records:
        assert set(record) == {"path", "duration", "model", "length", "tags"}  # the clips have no name tags
        assert record["model"] == model_id
        assert 5.0 < record["duration"] <= 31.0  # 4Q clips are 10-30 s
        assert len(record["tags"]) == min(10, len(vocabulary))  # the default --top
        assert {entry["tag"] for entry in record["tags"]} <= set(vocabulary)
        assert_sorted_by_score(record["tags"])
    assert result.stderr == ""


def test_top_limits_tags(module_qbsd, clips, full_records):
    result = module_qbsd("tag", "--top", "3", clips[0])
    assert result.returncode == 0, result
    [record] = result.json()
    assert len(record["tags"]) == 3
    assert_sorted_by_score(record["tags"])
    # the three strongest of the full list
    assert [e["tag"] for e in record["tags"]] == [e["tag"] for e in full_records[0]["tags"][:3]]


def test_top_zero_gives_every_tag(full_records, vocabulary):
    for record in full_records:
        assert len(record["tags"]) == len(vocabulary)
        assert sorted(entry["tag"] for entry in record["tags"]) == sorted(vocabulary)
        assert_sorted_by_score(record["tags"])


def test_vector_follows_vocabulary_order(full_records, vocabulary):
    for record in full_records:
        vector = record["vector"]
        assert len(vector) == len(vocabulary)
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in vector)
        by_tag = {entry["tag"]: entry["score"] for entry in record["tags"]}
        for name, value in zip(vocabulary, vector):
            assert by_tag[name] == pytest.approx(value, abs=1e-4)


def test_paths_on_stdin(module_qbsd, clips):
    files = clips[:2]
    listing = "".join(f"{f}\n" for f in files)
    without_argument = module_qbsd("tag", "--top", "2", input=listing)
    dash = module_qbsd("tag", "--top", "2", "-", input=listing)
    direct = module_qbsd("tag", "--top", "2", *files)
    for result in (without_argument, dash, direct):
        assert result.returncode == 0, result
        assert [r["path"] for r in result.json()] == [str(f) for f in files]
    assert without_argument.json() == direct.json()
    assert dash.json() == direct.json()


def test_failing_file_among_good_ones(module_qbsd, clips, make_audio):
    broken = make_audio.broken("broken.mp3")
    missing = make_audio.folder / "missing.wav"
    files = [clips[0], broken, clips[1], missing]
    result = module_qbsd("tag", "--top", "1", "--jobs", "2", *files)
    assert result.returncode == 1, result
    assert_no_traceback(result)
    assert [r["path"] for r in result.json()] == [str(clips[0]), str(clips[1])]
    errors = result.err_lines
    assert len(errors) == 2, result
    assert str(broken) in errors[0] and errors[0].startswith("qbsd: ")
    assert str(missing) in errors[1] and errors[1].startswith("qbsd: ")


def test_generated_wav_and_flac(module_qbsd, make_audio, vocabulary):
    files = [
        make_audio.chord("chord.wav"),
        make_audio.noise("noise.flac"),
        make_audio.chord("stereo.flac", channels=2, seconds=3.0),
    ]
    result = module_qbsd("tag", "--top", "0", *files)
    assert result.returncode == 0, result
    records = result.json()
    assert [r["duration"] for r in records] == pytest.approx([4.0, 4.0, 3.0], abs=0.01)
    assert all(len(r["tags"]) == len(vocabulary) for r in records)


def test_jobs_do_not_change_vectors(module_qbsd, clips, full_records):
    parallel = module_qbsd("tag", "--top", "0", "--vector", "--jobs", "2", *clips[:3])
    assert parallel.returncode == 0, parallel
    records = parallel.json()
    assert [r["path"] for r in records] == [r["path"] for r in full_records]
    assert [r["vector"] for r in records] == [r["vector"] for r in full_records]
