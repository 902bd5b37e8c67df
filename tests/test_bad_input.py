"""Bad input: every file that cannot be analysed costs one stderr line naming it and the
reason, never a traceback, and the other files are still processed; odd but valid
files (silence, unusual rates and channel counts, awkward names) are tagged.

`qbsd tag` is run on each bad file beside a good one; `qbsd index` runs once over a
folder holding every case, records the failures (`--errors`), and a second run does not
retry them until they change.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import InProcessQbsd, Qbsd, assert_no_traceback, copy_clips, write_chord
from reliability import error_lines, summary


def _noise(path: Path, seconds: float, rate: int, channels: int = 1, silent: bool = False) -> Path:
    rng = np.random.default_rng(len(path.name))
    shape = (int(seconds * rate), channels) if channels > 1 else (int(seconds * rate),)
    signal = np.zeros(shape, np.float32) if silent else (0.2 * rng.standard_normal(shape)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), signal, rate)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _symlink(path: Path, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _directory(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "inside.txt").write_text("a folder with an audio name\n")
    return path


# name -> (make(folder, clip) -> path, words expected in the reason)
BAD = {
    "empty": (lambda d, clip: _write(d / "empty.mp3", b""), "empty file"),
    "truncated-mp3": (
        lambda d, clip: _write(d / "truncated.mp3", clip.read_bytes()[:3000]),
        ("too short", "not decodable", "no audio"),
    ),
    "random-mp3": (lambda d, clip: _write(d / "random.mp3", random.Random(1).randbytes(40_000)), "not decodable"),
    "random-wav": (lambda d, clip: _write(d / "random.wav", random.Random(2).randbytes(40_000)), "not decodable"),
    "random-flac": (lambda d, clip: _write(d / "random.flac", random.Random(3).randbytes(40_000)), "not decodable"),
    "text-as-mp3": (lambda d, clip: _write(d / "notes.mp3", b"Dear diary, this is no song.\n" * 40), "not decodable"),
    "directory": (lambda d, clip: _directory(d / "x.mp3"), "is a directory"),
    "symlink-loop": (lambda d, clip: _symlink(d / "loop.mp3", "loop.mp3"), "symbolic link loop"),
    "broken-symlink": (lambda d, clip: _symlink(d / "broken.wav", "no-such-target.wav"), "broken symbolic link"),
    "shorter-than-a-patch": (lambda d, clip: _noise(d / "short.wav", 0.3, 22050), "too short"),
    "fifo": (lambda d, clip: _fifo(d / "hang.wav"), "named pipe"),
}


def _non_utf8(path: Path, name: bytes) -> Path:
    """Rename `path` to `name`, bytes that are not UTF-8 (the str has surrogate escapes)."""
    target = os.path.join(os.fsencode(str(path.parent)), name)
    os.rename(path, target)
    return Path(os.fsdecode(target))


# name -> make(folder, clip) -> path; all must be tagged
GOOD = {
    "digital-silence": lambda d, clip: _noise(d / "silence.wav", 3.0, 22050, silent=True),
    "8-khz": lambda d, clip: _noise(d / "rate-8k.wav", 3.0, 8000),
    "96-khz": lambda d, clip: _noise(d / "rate-96k.flac", 3.0, 96000),
    "mono": lambda d, clip: write_chord(d / "mono.wav", channels=1, seconds=3.0),
    "stereo": lambda d, clip: write_chord(d / "stereo.wav", channels=2, seconds=3.0, sample_rate=44100),
    "6-channels": lambda d, clip: write_chord(d / "surround.wav", channels=6, seconds=3.0, sample_rate=48000),
    "spaces": lambda d, clip: write_chord(d / "a song with  spaces .wav", seconds=3.0),
    "quotes": lambda d, clip: write_chord(d / 'it\'s "quoted".wav', seconds=3.0),
    "non-utf8": lambda d, clip: _non_utf8(write_chord(d / "tmp.wav", seconds=3.0), b"caf\xff.wav"),
    "leading-dash": lambda d, clip: write_chord(d / "-x.wav", seconds=3.0),
    "real-clip": lambda d, clip: copy_clips([clip], d)[0],
}


def shown(path: Path) -> str:
    """How qbsd shows a path to a person, in error lines and tables (undecodable bytes as
    \\xNN escapes); JSON lines keep the path itself (surrogate escapes, records.dumps)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def strict_json(line: str) -> dict:
    """json.loads that refuses NaN and infinity (Python's own accepts them)."""

    def refuse(constant):
        raise ValueError(f"{constant} in JSON output")

    return json.loads(line, parse_constant=refuse)


def matches(reason: str, words) -> bool:
    return any(word in reason for word in ([words] if isinstance(words, str) else words))


class Corpus:
    def __init__(self, root: Path, clip: Path):
        self.folder = root / "music"
        self.bad = {name: make(self.folder / "bad", clip) for name, (make, _) in BAD.items()}
        self.good = {name: make(self.folder / "good", clip) for name, make in GOOD.items()}
        # a folder symlink that loops back up: the scan must not follow it
        _symlink(self.folder / "good" / "deeper" / "back-up", "../..")
        self.index = root / "index"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, clips) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("bad-input"), clips[0])


@pytest.fixture(scope="module")
def mqbsd(tmp_path_factory) -> Qbsd:
    return InProcessQbsd(tmp_path_factory.mktemp("bad-input-home"))


@pytest.fixture(scope="module")
def good_run(mqbsd, corpus):
    return mqbsd("tag", "--top", "0", "--vector", *corpus.good.values(), timeout=120)


@pytest.fixture(scope="module")
def index_runs(mqbsd, corpus):
    first = mqbsd("index", corpus.folder, index=corpus.index)
    listed = mqbsd("index", "--errors", index=corpus.index)
    second = mqbsd("index", corpus.folder, index=corpus.index)
    return first, listed, second


# --------------------------------------------------------------------------- qbsd tag


@pytest.mark.parametrize("case", sorted(BAD))
def test_tag_reports_the_bad_file_and_goes_on(mqbsd, corpus, case):
    bad = corpus.bad[case]
    good = corpus.good["mono"]
    result = mqbsd("tag", bad, good, timeout=60)  # a hang (the FIFO) fails here
    assert result.returncode == 1, result
    assert_no_traceback(result)
    [line] = result.err_lines
    prefix = f"qbsd: {shown(bad)}: "
    assert line.startswith(prefix), result
    assert matches(line[len(prefix) :], BAD[case][1]), result
    [record] = [strict_json(line) for line in result.lines]
    assert record["path"] == str(good)


def test_tag_processes_every_odd_but_valid_file(good_run, corpus):
    result = good_run
    assert result.returncode == 0, result
    assert_no_traceback(result)
    assert result.err_lines == []
    records = [strict_json(line) for line in result.lines]
    # JSON keeps the path itself: an undecodable byte as its surrogate escape, lossless
    assert [r["path"] for r in records] == [str(p) for p in corpus.good.values()]
    for record in records:
        assert record["duration"] > 2.9
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in record["vector"])


def test_silence_gets_finite_scores(good_run, corpus):
    [record] = [
        strict_json(line) for line in good_run.lines if strict_json(line)["path"] == str(corpus.good["digital-silence"])
    ]
    assert all(math.isfinite(entry["score"]) for entry in record["tags"])


def test_leading_dash_after_double_dash(mqbsd, corpus):
    folder = corpus.good["leading-dash"].parent
    result = mqbsd.shell(f"cd {folder} && qbsd tag --top 1 -- -x.wav")
    assert result.returncode == 0, result
    assert [strict_json(line)["path"] for line in result.lines] == ["-x.wav"]
    assert_no_traceback(result)


def test_odd_names_through_stdin(mqbsd, corpus):
    names = [corpus.good[case] for case in ("spaces", "quotes", "non-utf8", "leading-dash")]
    listing = b"".join(os.fsencode(str(path)) + b"\n" for path in names)
    result = mqbsd("tag", "--top", "1", input=listing)
    assert result.returncode == 0, result
    assert [strict_json(line)["path"] for line in result.lines] == [str(p) for p in names]


# --------------------------------------------------------------------------- qbsd index


def test_index_reports_each_bad_file_once(index_runs, corpus):
    first, _, _ = index_runs
    assert first.returncode == 1, first
    assert_no_traceback(first)
    complaints = error_lines(first)
    assert len(complaints) == len(BAD), first
    for case, path in corpus.bad.items():
        [line] = [c for c in complaints if c.startswith(f"qbsd: {shown(path)}: ")]
        assert matches(line, BAD[case][1]), line
    counts = summary(first)
    assert counts["added"] == counts["songs"] == len(GOOD)
    assert counts["failed"] == len(BAD)
    assert counts["unchanged"] == counts["updated"] == counts["removed"] == 0


def test_index_errors_lists_the_failures(index_runs, corpus):
    _, listed, _ = index_runs
    assert listed.returncode == 0, listed
    records = {r["path"]: r["error"] for r in listed.json()}
    assert set(records) == {str(path) for path in corpus.bad.values()}
    for case, path in corpus.bad.items():
        assert matches(records[str(path)], BAD[case][1])


def test_second_index_run_does_not_retry_failures(index_runs):
    _, _, second = index_runs
    assert second.returncode == 0, second  # nothing failed in this run
    assert error_lines(second) == [], second
    counts = summary(second)
    # a known failure counts as failed, not also as unchanged
    assert counts == {
        "added": 0,
        "updated": 0,
        "removed": 0,
        "failed": len(BAD),
        "unchanged": len(GOOD),
        "songs": len(GOOD),
    }


def test_fixed_file_is_retried(mqbsd, corpus, index_runs):
    fixed = corpus.bad["shorter-than-a-patch"]
    _noise(fixed, 3.0, 22050)
    result = mqbsd("index", corpus.folder, index=corpus.index)
    assert result.returncode == 0, result
    counts = summary(result)
    assert (counts["added"], counts["failed"], counts["unchanged"]) == (1, len(BAD) - 1, len(GOOD))
    assert str(fixed) not in {r["path"] for r in mqbsd("index", "--errors", index=corpus.index).json()}
    _noise(fixed, 0.3, 22050)  # and broken again, for any later test


def test_non_utf8_folder_and_file_names_become_the_songs_names(mqbsd, tmp_path):
    music = tmp_path / "music"
    _non_utf8(write_chord(music / "tmp" / "Album" / "tmp.wav", seconds=3.0), b"caf\xff.wav")
    os.rename(music / "tmp", os.path.join(os.fsencode(str(music)), b"Art\xfeist"))
    song = Path(os.fsdecode(os.path.join(os.fsencode(str(music)), b"Art\xfeist", b"Album", b"caf\xff.wav")))
    index = tmp_path / "index"
    indexed = mqbsd("index", music, index=index)
    assert indexed.returncode == 0, indexed
    assert_no_traceback(indexed)
    [record] = mqbsd("search", "calm", "--format", "json", index=index).json()
    expected = {"path": str(song), "artist": "Art\\xfeist", "album": "Album", "title": "caf\\xff"}
    assert {key: record[key] for key in expected} == expected
    assert record["length"] == pytest.approx(3.0, abs=0.01)  # the file itself was read too
    # the same names through JSON lines (surrogate escapes, as json.dumps writes them)
    line = json.dumps({**mqbsd("tag", "--vector", song).json()[0], "path": str(song), "artist": "Art\udcfeist"})
    ingested = mqbsd("index", "--from-jsonl", "-", index=tmp_path / "jsonl-index", input=line + "\n")
    assert ingested.returncode == 0, ingested
    [record] = mqbsd("search", "calm", "--format", "json", index=tmp_path / "jsonl-index").json()
    assert (record["path"], record["artist"], record["title"]) == (str(song), "Art\\xfeist", "caf\\xff")


# --------------------------------------------------------------------------- no read permission


def _as_nobody() -> list[str] | None:
    """A command prefix that runs as an unprivileged user, or None if impossible."""
    if os.geteuid() != 0:
        return []  # not root: permission bits already apply
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        if subprocess.run(prefix + ["true"], capture_output=True).returncode == 0:
            return prefix
    return None


def test_file_without_read_permission(qbsd, clips):
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot test a file root could read anyway")
    # pytest's tmp_path is private to root; this folder is open to the unprivileged user
    root = Path(tempfile.mkdtemp(prefix="qbsd-perm-"))
    try:
        os.chmod(root, 0o755)
        music = root / "music"
        good = write_chord(music / "good.wav", seconds=3.0)
        secret = write_chord(music / "secret.wav", seconds=3.0)
        os.chmod(music, 0o755)
        os.chmod(good, 0o644)
        os.chmod(secret, 0o000)
        index = root / "index"
        index.mkdir()
        xdg = root / "xdg"
        xdg.mkdir()
        if prefix:
            os.chown(index, 65534, 65534)
            os.chown(xdg, 65534, 65534)
        env = {**qbsd.env, "XDG_DATA_HOME": str(xdg), "XDG_CACHE_HOME": str(xdg), "HOME": str(xdg)}
        probe = subprocess.run(prefix + qbsd.command + ["tags"], capture_output=True, env=env, cwd=root, timeout=120)
        if probe.returncode != 0:
            pytest.skip(
                "the unprivileged user cannot run qbsd or read its model here: "
                + probe.stderr.decode(errors="replace").strip()[-200:]
            )

        def run(*args):
            completed = subprocess.run(
                prefix + qbsd.command + [str(a) for a in args], capture_output=True, env=env, cwd=root, timeout=120
            )
            return completed.returncode, completed.stdout.decode(), completed.stderr.decode()

        status, out, err = run("tag", "--top", "1", secret, good)
        assert status == 1, err
        assert "Traceback" not in err
        assert err.splitlines() == [f"qbsd: {secret}: Permission denied"]
        assert [json.loads(line)["path"] for line in out.splitlines()] == [str(good)]

        status, out, err = run("index", music, "--index", index)
        assert status == 1, err
        assert [line for line in err.splitlines() if line.startswith("qbsd:")] == [f"qbsd: {secret}: Permission denied"]
        assert "added 1, updated 0, removed 0, failed 1, unchanged 0" in err
        status, out, err = run("index", "--errors", "--index", index)
        assert [json.loads(line) for line in out.splitlines()] == [{"path": str(secret), "error": "Permission denied"}]
        status, out, err = run("index", music, "--index", index)
        assert status == 0, err
        assert "added 0, updated 0, removed 0, failed 1, unchanged 1" in err
        # giving read permission changes the file's status time: it is retried
        os.chmod(secret, 0o644)
        status, out, err = run("index", music, "--index", index)
        assert status == 0, err
        assert "added 1, updated 0, removed 0, failed 0, unchanged 1" in err
    finally:
        shutil.rmtree(root, ignore_errors=True)
