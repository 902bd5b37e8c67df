"""Duplicates only when the audio agrees (issue 18): a package whose every track carries the
same artist, album and title (different recordings of one artist, lengths within 2 s) gives
no duplicate group and hides nothing from `similar`; a re-encode of one of them with 300 ms
of leading silence is still one recording with it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import NO_CLIPS, SHARED_DATA, assert_no_traceback

PACKAGE = {"artist": "Various Hits", "album": "The Package", "title": "Great Song"}
SECONDS = 25.0  # every track cut to 25 s: lengths within 2 s, as the old rule asked


def one_artists_clips(count: int) -> list[Path]:
    """`count` clips of the artist with the most clips in the 4Q metadata (different
    recordings of similar music: the hard case for a tag vector)."""
    metadata = SHARED_DATA / "metadata.csv"
    if not metadata.is_file():
        pytest.skip(NO_CLIPS)
    by_artist: dict[str, list[Path]] = {}
    with open(metadata, encoding="latin-1", newline="") as handle:
        for row in csv.DictReader(handle):
            clip = SHARED_DATA / "audio" / f"{row['Song']}.mp3"
            if clip.is_file() and soundfile.info(str(clip)).duration >= SECONDS:
                by_artist.setdefault(row["Artist"], []).append(clip)
    if not by_artist:
        pytest.skip(NO_CLIPS)
    clips = max(by_artist.values(), key=len)
    if len(clips) < count:
        pytest.skip(f"no artist with {count} clips of {SECONDS:g} s in {metadata}")
    return sorted(clips)[:count]


def tagged_copy(clip: Path, target: Path, silence: float = 0.0) -> Path:
    samples, rate = soundfile.read(str(clip), dtype="float32")
    samples = samples if samples.ndim == 1 else samples.mean(axis=1)
    samples = np.concatenate([np.zeros(int(silence * rate), np.float32), samples[: int(SECONDS * rate)]])
    target.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(str(target), "w", rate, 1) as out:
        for key, value in PACKAGE.items():
            setattr(out, key, value)
        out.write(samples)
    return target


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from helpers import InProcessQbsd

    home = tmp_path_factory.mktemp("package")
    clips = one_artists_clips(6)
    music = home / "music"
    songs = [tagged_copy(clip, music / f"track {i}.flac") for i, clip in enumerate(clips)]
    # the same recording as track 0: Ogg Vorbis, 300 ms of silence added at the start
    copy = tagged_copy(clips[0], music / "track 0 again.ogg", silence=0.3)
    qbsd = InProcessQbsd(home / "home")
    index = home / "index"
    built = qbsd("index", music, index=index)
    assert built.returncode == 0, built
    return qbsd, index, songs, copy


def test_identical_tags_alone_make_no_duplicates(package):
    qbsd, index, songs, copy = package
    for song in songs + [copy]:  # the tags really are identical
        with soundfile.SoundFile(str(song)) as audio:
            assert (audio.artist, audio.album, audio.title) == tuple(PACKAGE.values())
    result = qbsd("index", "--duplicates", index=index)
    assert_no_traceback(result)
    assert result.returncode == 0, result
    groups: dict[int, set[str]] = {}
    for record in result.json():
        groups.setdefault(record["group"], set()).add(record["path"])
    assert list(groups.values()) == [{str(songs[0]), str(copy)}]  # only what the audio says


def test_similar_hides_only_the_re_encode(package):
    qbsd, index, songs, copy = package
    result = qbsd("similar", songs[1], "--top", "20", "--format", "json", index=index)
    assert_no_traceback(result)
    assert result.returncode == 0, result
    listed = {record["path"] for record in result.json()}
    assert {str(song) for song in songs[2:]} <= listed  # none hidden for sharing its tags
    assert len(listed & {str(songs[0]), str(copy)}) == 1  # one recording, shown once
    kept = qbsd("similar", songs[1], "--top", "20", "--keep-duplicates", "--format", "json", index=index)
    assert {str(songs[0]), str(copy)} <= {record["path"] for record in kept.json()}


def test_a_query_file_outside_the_index_bars_its_re_encodes(package, tmp_path):
    """A re-encode given as the query (not in the index) is analysed, fingerprint too: the
    recording it is a copy of is left out of its list, however far the vectors moved."""
    qbsd, index, songs, _copy = package
    clips = one_artists_clips(6)
    query = tagged_copy(clips[2], tmp_path / "query.ogg", silence=0.25)
    result = qbsd("similar", query, "--top", "20", "--format", "json", index=index)
    assert result.returncode == 0, result
    listed = {record["path"] for record in result.json()}
    assert str(songs[2]) not in listed
    assert {str(song) for song in songs[1:] if song != songs[2]} <= listed  # the others are all there
    kept = qbsd("similar", query, "--top", "20", "--keep-duplicates", "--format", "json", index=index)
    assert str(songs[2]) in {record["path"] for record in kept.json()}


# --------------------------------------------------------------------------- the rule itself


def fake_print(seed: int, flipped: int = 0) -> bytes:
    """A fingerprint of 215 random steps (seeded); `flipped` of its first words inverted."""
    from qbsd_cli import fingerprint

    words = np.random.default_rng(seed).integers(0, 1 << 16, 215, dtype=np.uint16)
    words[:flipped] ^= 0xFFFF
    return fingerprint._HEADER.pack(fingerprint.VERSION, fingerprint.BITS, 930) + words.astype("<u2").tobytes()


def test_the_rule_needs_the_audio():
    from qbsd_cli.ranking import CANDIDATE_COSINE, Selection, duplicate_groups, same_recording
    from qbsd_cli.songinfo import SongInfo

    def song(print_: bytes | None, title: str = "Great Song") -> SongInfo:
        return SongInfo("Various Hits", "The Package", title, 200.0, True, fingerprint=print_)

    far = CANDIDATE_COSINE - 0.3  # not a candidate by its vector
    assert not same_recording(far, 0.997, song(None), song(None))  # the same names, no audio evidence
    assert not same_recording(far, 0.997, song(fake_print(1)), song(fake_print(2)))  # audio disagrees
    assert same_recording(far, 0.997, song(fake_print(1)), song(fake_print(1, flipped=20)))  # agrees: 9% of bits
    assert not same_recording(far, 0.997, song(fake_print(1)), song(fake_print(1), "Other"))  # no candidate
    assert same_recording(CANDIDATE_COSINE, 0.997, song(fake_print(1)), song(fake_print(1), "Other"))
    assert same_recording(0.998, 0.997, song(fake_print(1)), song(fake_print(2)))  # the vector alone

    # four songs with one name: two recordings (0 and 2 are one), vectors apart
    infos = [song(fake_print(1)), song(fake_print(2)), song(fake_print(1, flipped=10)), song(None)]
    units = np.eye(4, dtype=np.float32)
    assert [[i for i, _ in group] for group in duplicate_groups(list("abcd"), units, infos, 0.997)] == [[0, 2]]
    selection = Selection(0.997)
    selection.add("a", units[0], infos[0])
    assert [selection.is_duplicate(units[i], infos[i]) for i in (1, 2, 3)] == [False, True, False]


def test_each_model_carries_its_measured_duplicate_cosine():
    """The thresholds live in the models' metadata (written by export, set to the measured
    value by `python -m qbsd_cli.training.export MODEL --duplicate-cosine X`), not in code."""
    from qbsd_cli.model import DUPLICATE_COSINE_KEY, ModelInfo, duplicate_threshold
    from qbsd_cli.settings import DEFAULT_DUPLICATE_COSINE

    fast, accurate = ModelInfo.read("fast"), ModelInfo.read("accurate")
    assert DUPLICATE_COSINE_KEY in fast.metadata and DUPLICATE_COSINE_KEY in accurate.metadata
    assert duplicate_threshold(fast.model_id) == fast.duplicate_cosine == 0.997  # benchmarks/DUPLICATES.md
    assert duplicate_threshold(accurate.model_id) == accurate.duplicate_cosine == 0.99
    assert duplicate_threshold("qbsd-a-model-never-measured") == DEFAULT_DUPLICATE_COSINE


def test_fingerprint_comparisons_grow_with_the_songs_not_their_square(monkeypatch):
    """A library where every song is a candidate of every other (one package's tracks,
    alike and tagged alike) costs at most CANDIDATES_PER_SONG comparisons a song."""
    import numpy as np

    from qbsd_cli import ranking
    from qbsd_cli.songinfo import SongInfo

    n = 60
    rng = np.random.default_rng(3)
    base = rng.random(32)
    rows = np.stack([base + 0.02 * rng.random(32) for _ in range(n)]).astype(np.float32)
    units = ranking.unit_rows(rows)
    infos = [SongInfo("Artist", "Album", "Title", 100.0, tagged=True, fingerprint=bytes([i]) * 8) for i in range(n)]
    compared = []
    monkeypatch.setattr(ranking.fingerprint, "agree", lambda a, b: compared.append((a, b)) or False)
    groups = ranking.duplicate_groups([f"/m/{i:03d}.mp3" for i in range(n)], units, infos, threshold=0.99999)
    assert groups == []
    assert 0 < len(compared) <= 2 * n * ranking.CANDIDATES_PER_SONG  # by cosine and by name
