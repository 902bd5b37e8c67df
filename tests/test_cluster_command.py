"""`qbsd cluster --count N`: the library as N named playlists, deterministic, with caps,
m3u files per cluster, and one line and an exit status for bad input."""

from __future__ import annotations

import json
import os

import pytest
from helpers import assert_no_traceback


def _clusters(qbsd, index, *args) -> list[dict]:
    result = qbsd("cluster", *args, "--format", "json", index=index)
    assert result.returncode == 0, result
    assert_no_traceback(result)
    return [json.loads(line) for line in result.lines]


def test_every_song_in_one_named_cluster_and_the_same_each_time(library):
    qbsd, index = library.qbsd, library.index
    clusters = _clusters(qbsd, index, "--count", "3")
    assert _clusters(qbsd, index, "--count", "3") == clusters  # deterministic
    assert [c["cluster"] for c in clusters] == list(range(1, len(clusters) + 1))
    assert 1 <= len(clusters) <= 3
    assert sum(c["size"] for c in clusters) == len(library.files)
    listed = [song["path"] for c in clusters for song in c["songs"]]
    assert sorted(listed) == sorted(str(path) for path in library.files)
    assert [c["size"] for c in clusters] == sorted((c["size"] for c in clusters), reverse=True)
    for cluster in clusters:
        assert cluster["name"] == " · ".join(tag.split(":", 1)[-1] for tag in cluster["tags"])
        scores = [song["score"] for song in cluster["songs"]]
        assert scores == sorted(scores, reverse=True)  # most central first


def test_explain_says_how_strongly_each_tag_marks_a_cluster(library):
    clusters = _clusters(library.qbsd, library.index, "--count", "2", "--explain")
    for cluster in clusters:
        lifts = [mark["lift"] for mark in cluster["because"]]
        assert lifts == sorted(lifts, reverse=True) and lifts[0] > 0
        assert [mark["tag"] for mark in cluster["because"][:3]] == cluster["tags"]
        assert all(0.0 <= mark["cluster"] <= 1.0 and 0.0 <= mark["library"] <= 1.0 for mark in cluster["because"])


def test_sizes_and_caps(library):
    qbsd, index = library.qbsd, library.index
    one = _clusters(qbsd, index, "--count", "4", "--min-size", str(len(library.files)))
    assert len(one) == 1 and one[0]["size"] == len(library.files)  # every small cluster dissolved
    capped = _clusters(qbsd, index, "--count", "2", "--max-size", "2")
    assert all(len(c["songs"]) <= 2 for c in capped)
    assert sum(c["size"] for c in capped) == len(library.files)  # sizes still count every song


def test_output_writes_one_safe_m3u_per_cluster(library, tmp_path):
    qbsd, index = library.qbsd, library.index
    folder = tmp_path / "playlists"
    result = qbsd("cluster", "--count", "3", "--output", folder, "--format", "json", index=index)
    assert result.returncode == 0, result
    clusters = [json.loads(line) for line in result.lines]
    files = sorted(os.listdir(folder))
    assert len(files) == len(clusters)
    for name, cluster in zip(files, clusters):
        assert name.startswith(f"{cluster['cluster']:02d} ") and name.endswith(".m3u")
        assert "/" not in name and "·" not in name
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        assert lines[0] == "#EXTM3U"
        assert [line for line in lines if not line.startswith("#")] == [song["path"] for song in cluster["songs"]]


def test_table_output(library):
    result = library.qbsd("cluster", "--count", "2", "--explain", "--format", "table", index=library.index)
    assert result.returncode == 0, result
    assert "clusters" in result.stdout and "lift" in result.stdout


@pytest.mark.parametrize("count", ["0", "-1", "1000"])
def test_a_bad_count_is_one_line(library, count):
    result = library.qbsd("cluster", "--count", count, index=library.index)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    [line] = result.err_lines
    assert line.startswith(f"qbsd: --count {count}: ")


def test_an_empty_index_is_one_line(qbsd, tmp_path):
    result = qbsd("cluster", "--count", "3", index=tmp_path / "nothing")
    assert result.returncode == 1, result
    [line] = result.err_lines
    assert "no index" in line or "no songs" in line
