"""The audio fingerprint (qbsd_cli/fingerprint.py) on real clips: deterministic, the same
for re-encodes and shifted copies, different for different clips; what the store and the
JSON lines of `qbsd tag --vector` keep of it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile

from qbsd_cli import fingerprint
from qbsd_cli.analysis import AnalysisPool
from qbsd_cli.audio import resample
from qbsd_cli.model import TagModel
from qbsd_cli.songinfo import SongInfo
from qbsd_cli.store import SCHEMA_VERSION, IndexStore


@pytest.fixture(scope="module")
def fast() -> TagModel:
    return TagModel("fast")


def write(samples: np.ndarray, rate: int, target: Path, **options) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(target), samples, rate, **options)
    return target


def mono(clip: Path) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(str(clip), dtype="float32")
    return (samples if samples.ndim == 1 else samples.mean(axis=1)), rate


def test_deterministic_and_the_same_in_a_worker_process(fast, clips):
    first = fast.analyse(str(clips[0])).fingerprint
    assert first is not None and fingerprint.is_valid(first)
    assert 300 <= len(first) <= 600  # a few hundred bytes
    assert fast.analyse(str(clips[0])).fingerprint == first
    with AnalysisPool(str(fast.path), 1, 4) as pool:
        (result,) = list(pool.analyse([str(clips[0])]))
    assert result.fingerprint == first  # what `qbsd index` stores, from its worker
    assert fingerprint.bit_error_rate(first, first) == 0.0


@pytest.mark.parametrize("variant", ["ogg", "mp3-64k", "flac-44khz", "silence+300ms", "trimmed-300ms"])
def test_a_re_encode_agrees(fast, clips, tmp_path, variant):
    samples, rate = mono(clips[1])
    if variant == "ogg":
        path = write(samples, rate, tmp_path / "a.ogg")
    elif variant == "mp3-64k":
        path = write(samples, rate, tmp_path / "a.mp3", compression_level=0.6, bitrate_mode="CONSTANT")
    elif variant == "flac-44khz":
        path = write(resample(samples, rate, 44100), 44100, tmp_path / "a.flac")
    elif variant == "silence+300ms":
        path = write(np.concatenate([np.zeros(int(0.3 * rate), np.float32), samples]), rate, tmp_path / "a.flac")
    else:
        path = write(samples[int(0.3 * rate) :], rate, tmp_path / "a.flac")
    original = fast.analyse(str(clips[1])).fingerprint
    copy = fast.analyse(str(path)).fingerprint
    rate_of_errors = fingerprint.bit_error_rate(original, copy)
    assert rate_of_errors is not None and rate_of_errors <= fingerprint.MATCH_BER, rate_of_errors
    assert fingerprint.agree(original, copy)


def test_different_clips_disagree(fast, clips):
    prints = [fast.analyse(str(clip)).fingerprint for clip in clips[:6]]
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            rate_of_errors = fingerprint.bit_error_rate(prints[i], prints[j])
            assert rate_of_errors is not None and rate_of_errors > 0.42, (i, j, rate_of_errors)
            assert not fingerprint.agree(prints[i], prints[j])


def test_the_alignment_search_finds_a_shift(fast, clips, monkeypatch):
    """Audio starting 0.6 s later (not silence: music cut off) agrees only thanks to the
    search over offsets."""
    samples, rate = mono(clips[2])
    bands = fast.front_end.patches_and_log_mel(resample(samples, rate, fast.front_end.sample_rate))[2]
    shift = int(round(0.6 * fast.front_end.sample_rate / fast.front_end.hop_length))
    whole = fingerprint.compute(bands, fast.front_end.sample_rate, fast.front_end.hop_length)
    later = fingerprint.compute(bands[shift:], fast.front_end.sample_rate, fast.front_end.hop_length)
    assert fingerprint.bit_error_rate(whole, later) <= fingerprint.MATCH_BER
    monkeypatch.setattr(fingerprint, "SEARCH_SECONDS", 0.0)
    assert fingerprint.bit_error_rate(whole, later) > 0.42


def test_silence_and_short_audio_have_none(fast):
    rate, hop = fast.front_end.sample_rate, fast.front_end.hop_length
    silent = fast.front_end.patches_and_log_mel(np.zeros(20 * rate, np.float32))[2]
    assert fingerprint.compute(silent, rate, hop) is None
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * rate).astype(np.float32)  # under MIN_SECONDS
    assert fingerprint.compute(fast.front_end.patches_and_log_mel(noise)[2], rate, hop) is None
    assert fingerprint.bit_error_rate(None, b"x") is None


def test_text_form_is_checked(fast, clips):
    data = fast.analyse(str(clips[3])).fingerprint
    assert fingerprint.from_text(fingerprint.to_text(data)) == data
    for bad in (None, 12, "not base64!", "QUJD", "A" * 100_000, fingerprint.to_text(b"\x09" + data[1:])):
        assert fingerprint.from_text(bad) is None


def test_the_accurate_model_has_one_too(clips):
    accurate = TagModel("accurate")
    first, second = (accurate.analyse(str(clip)).fingerprint for clip in clips[:2])
    assert fingerprint.is_valid(first) and fingerprint.is_valid(second)
    assert fingerprint.bit_error_rate(first, second) > 0.42
    fast_print = TagModel("fast").analyse(str(clips[0])).fingerprint
    assert fingerprint.bit_error_rate(first, fast_print) is None  # another frame rate: never compared


def test_the_store_keeps_it_and_an_older_index_has_none(tmp_path):
    folder = tmp_path / "index"
    data = fingerprint._HEADER.pack(fingerprint.VERSION, fingerprint.BITS, 930) + bytes(range(200)) * 2
    vector = np.linspace(0, 1, 4, dtype=np.float32)
    with IndexStore(folder) as store:
        store.bind_model("qbsd-test-0123456789", ["a", "b", "c", "d"])
        store.put_song("/a.flac", 1, 2, 30.0, vector, SongInfo("Ar", "Al", "Ti", 30.0, True), data)
        store.put_song("/b.flac", 1, 2, 30.0, vector, SongInfo("Ar", "Al", "Ti", 30.0, True))
        store.set_song_info("/a.flac", SongInfo("Other", None, "Name", 30.0, True))  # names only
        assert store.songs_for(["/a.flac"])["/a.flac"][1].fingerprint == data
        paths, _matrix, _unit, infos = store.catalogue()
        assert [info.fingerprint for info in infos] == [data, None]
        rowids, _scores = store.scan(lambda vectors, _unit: vectors[:, 0])
        assert {path: info.fingerprint for path, _v, info in store.songs_by_rowid(rowids).values()} == {
            "/a.flac": data,
            "/b.flac": None,
        }
    with sqlite3.connect(folder / "songs.sqlite") as database:  # back to schema 3
        database.execute("ALTER TABLE songs DROP COLUMN fingerprint")
        database.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with IndexStore(folder, create=False) as store:
        assert [info.fingerprint for info in store.catalogue()[3]] == [None, None]
    with sqlite3.connect(folder / "songs.sqlite") as database:
        version = database.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION) == "4"


def test_tag_lines_carry_it_and_from_jsonl_keeps_it(qbsd, clips, tmp_path):
    tagged = qbsd("tag", "--vector", clips[0], clips[1])
    assert tagged.returncode == 0, tagged
    records = tagged.json()
    assert all(fingerprint.is_valid(fingerprint.from_text(record["fingerprint"])) for record in records)
    records[1]["fingerprint"] = "####"  # not base64: ignored, the record still stored
    lines = tmp_path / "lines.jsonl"
    lines.write_text("".join(json.dumps(record) + "\n" for record in records))
    index = tmp_path / "index"
    ingested = qbsd("index", "--from-jsonl", lines, index=index)
    assert ingested.returncode == 0, ingested
    with IndexStore(index, create=False) as store:
        stored = {path: info.fingerprint for path, info in zip(store.catalogue()[0], store.catalogue()[3])}
    assert stored == {str(clips[0]): fingerprint.from_text(records[0]["fingerprint"]), str(clips[1]): None}
