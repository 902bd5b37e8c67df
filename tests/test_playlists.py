"""Playlists (issue 11): song metadata, several seeds and counter-examples, words with
examples, a path between two songs, no duplicates, caps per artist and album, reasons, and
the same list for the same query. One index of real clips (laid out as Artist/Album/...),
re-encodes of some of them and generated audio with tags is shared by the module."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import AudioFactory, InProcessQbsd, assert_no_traceback, copy_clips

from qbsd_cli.model import duplicate_threshold
from qbsd_cli.store import IndexStore
from qbsd_cli.vocabulary import resolve_words


def reencode(source: Path, target: Path, tags: dict | None = None, seconds: float | None = None, **options) -> Path:
    """`source` decoded and written again by soundfile (format from the extension), with
    tags; its first `seconds` only, when given."""
    samples, rate = soundfile.read(str(source), dtype="float32")
    if seconds is not None:
        samples = samples[: int(seconds * rate)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(str(target), "w", rate, 1, **options) as out:
        for key, value in (tags or {}).items():
            setattr(out, key, value)
        out.write(samples)
    return target


class Playlists:
    def __init__(self, qbsd, music: Path, index: Path, clips: dict[str, list[Path]], special: dict[str, Path]):
        self.qbsd, self.music, self.index, self.clips, self.special = qbsd, music, index, clips, special

    def run(self, *args):
        result = self.qbsd(*args, index=self.index)
        assert_no_traceback(result)
        return result

    def json(self, *args) -> list[dict]:
        result = self.run(*args, "--format", "json")
        assert result.returncode == 0, result
        return result.json()

    def vectors(self) -> tuple[dict[str, np.ndarray], list[str]]:
        with IndexStore(self.index, create=False) as store:
            paths, matrix = store.all_vectors()
            return dict(zip(paths, matrix)), store.tags


@pytest.fixture(scope="module")
def shelf(clips, tmp_path_factory) -> Playlists:
    home = tmp_path_factory.mktemp("playlists")
    music = home / "music"
    laid_out = {
        "Alpha": copy_clips(clips[0:8], music / "Alpha" / "First Album"),
        "Beta": copy_clips(clips[8:16], music / "Beta" / "Second Album"),
        "Gamma": copy_clips(clips[16:20], music / "Gamma"),  # an artist folder without albums
    }
    first, second, tagged_source = laid_out["Alpha"][0], laid_out["Alpha"][1], clips[20]
    special = {
        # the same recording again: a byte copy, a 160 kbit/s MP3 and a FLAC of the first clip
        "byte copy": music / "Copies" / "byte copy.mp3",
        "mp3 copy": reencode(first, music / "Copies" / "mp3 copy.mp3", compression_level=0.0, bitrate_mode="CONSTANT"),
        "flac copy": reencode(first, music / "Copies" / "flac copy.flac"),
        # one recording under its tags: a FLAC, and a 24 kbit/s MP3 too far in vector to match
        "tagged flac": reencode(
            tagged_source, music / "Tagged" / "a.flac", {"artist": "Nina Test", "title": "Song One", "album": "Tapes"}
        ),
        "tagged mp3": reencode(
            tagged_source,
            music / "Tagged" / "b.mp3",
            {"artist": "Nina Test", "title": "Song One", "album": "Tapes"},
            compression_level=0.9,
            bitrate_mode="CONSTANT",
        ),
        "same twice": music / "Copies" / "second again.mp3",
    }
    shutil.copyfile(first, special["byte copy"])
    shutil.copyfile(second, special["same twice"])
    generated = AudioFactory(music / "Generated")
    chord = generated.chord("chord.wav")
    special["tagged ogg"] = reencode(chord, music / "Generated" / "chord.ogg", {"artist": "Synth", "title": "A Chord"})
    generated.noise("noise.flac")
    qbsd = InProcessQbsd(home / "home")
    index = home / "index"
    built = qbsd("index", music, "--jobs", "2", index=index)
    assert built.returncode == 0, built
    return Playlists(qbsd, music, index, laid_out, special)


def by_path(records: list[dict]) -> dict[str, dict]:
    return {record["path"]: record for record in records}


def unit(vector):
    return vector / np.linalg.norm(vector)


# ------------------------------------------------------------------ metadata


def test_metadata_from_tags_and_from_folders(shelf):
    records = by_path(shelf.json("search", "calm", "--top", "100", "--keep-duplicates"))
    alpha = records[str(shelf.clips["Alpha"][3])]
    assert (alpha["artist"], alpha["album"], alpha["title"]) == ("Alpha", "First Album", shelf.clips["Alpha"][3].stem)
    gamma = records[str(shelf.clips["Gamma"][0])]
    assert gamma["artist"] == "Gamma" and "album" not in gamma
    tagged = records[str(shelf.special["tagged flac"])]
    assert (tagged["artist"], tagged["album"], tagged["title"]) == ("Nina Test", "Tapes", "Song One")
    ogg = records[str(shelf.special["tagged ogg"])]
    assert (ogg["artist"], ogg["title"]) == ("Synth", "A Chord")
    assert ogg["length"] == pytest.approx(4.0, abs=0.01)  # the generated chord's 4 s
    assert 9.0 <= alpha["length"] <= 31.0  # the clips are 10-30 s


def test_an_index_of_schema_2_keeps_working_and_learns_the_metadata(shelf, tmp_path):
    old = tmp_path / "old-index"
    shutil.copytree(shelf.index, old, ignore=shutil.ignore_patterns("lock"))
    with sqlite3.connect(old / "songs.sqlite") as database:  # back to what qbsd stored before
        for column in ("artist", "album", "title", "length", "tagged", "info_read", "fingerprint"):
            database.execute(f"ALTER TABLE songs DROP COLUMN {column}")
        database.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    query = shelf.clips["Beta"][0]
    before = shelf.qbsd("similar", query, "--top", "3", "--format", "json", index=old)
    assert before.returncode == 0, before
    assert all("artist" not in record for record in before.json())  # not read yet: paths alone
    updated = shelf.qbsd("index", shelf.music, index=old)
    assert updated.returncode == 0, updated
    assert "added 0, updated 0" in updated.stderr  # nothing analysed again
    after = shelf.qbsd("similar", query, "--top", "3", "--format", "json", index=old).json()
    assert [r["path"] for r in after] == [r["path"] for r in before.json()]
    assert all(record.get("artist") for record in after)


def test_tag_lines_carry_the_files_own_names_and_length(shelf):
    tagged = shelf.qbsd("tag", "--vector", shelf.special["tagged flac"], shelf.clips["Beta"][1])
    assert tagged.returncode == 0, tagged
    named, plain = tagged.json()
    assert (named["artist"], named["album"], named["title"]) == ("Nina Test", "Tapes", "Song One")
    assert not {"artist", "album", "title"} & set(plain)  # no tags in the clip; folders are not tags
    assert all(9.0 <= record["length"] <= 31.0 for record in (named, plain))  # the clips are 10-30 s


def test_from_jsonl_takes_artist_album_and_title(shelf, tmp_path):
    music = tmp_path / "music"
    files = copy_clips([shelf.clips["Beta"][1], shelf.clips["Beta"][2]], music / "Folder Artist" / "Folder Album")
    tagged = shelf.qbsd("tag", "--vector", *files)
    assert tagged.returncode == 0, tagged
    records = tagged.json()
    records[0].update(artist="Someone", album="Somewhere", title="Something")
    lines = "".join(json.dumps(record) + "\n" for record in records)
    index = tmp_path / "jsonl-index"
    ingested = shelf.qbsd("index", "--from-jsonl", "-", index=index, input=lines)
    assert ingested.returncode == 0, ingested

    def names():
        found = by_path(shelf.qbsd("search", "calm", "--format", "json", index=index).json())
        return [tuple(found[str(path)].get(key) for key in ("artist", "album", "title")) for path in files]

    # no tags in the second clip, and no indexed folder yet: its file name alone
    assert names() == [("Someone", "Somewhere", "Something"), (None, None, files[1].stem)]
    folder_index = shelf.qbsd("index", music, index=index)
    assert folder_index.returncode == 0, folder_index
    assert "added 0, updated 0" in folder_index.stderr  # nothing analysed again
    assert names() == [("Someone", "Somewhere", "Something"), ("Folder Artist", "Folder Album", files[1].stem)]


# ------------------------------------------------------------------ seeds, counter-examples, words


def test_several_seeds_query_together_and_never_come_back(shelf):
    seeds = [shelf.clips["Alpha"][2], shelf.clips["Beta"][3]]
    records = shelf.json("similar", *seeds, "--top", "5")
    assert len(records) == 5
    vectors, _tags = shelf.vectors()
    direction = unit(sum(unit(vectors[str(seed)]) for seed in seeds) / 2)
    barred = {str(seed) for seed in seeds}
    for record in records:
        assert record["path"] not in barred
        assert record["score"] == pytest.approx(float(unit(vectors[record["path"]]) @ direction), abs=1e-3)
    scores = [record["score"] for record in records]
    assert scores == sorted(scores, reverse=True)


def test_a_counter_example_pushes_the_list_away(shelf):
    seed, avoided = shelf.clips["Alpha"][4], shelf.clips["Beta"][4]
    vectors, _tags = shelf.vectors()
    plain = shelf.json("similar", seed, "--top", "5")
    away = shelf.json("similar", seed, "--not", avoided, "--top", "5")
    assert str(avoided) not in {record["path"] for record in away}

    def closeness(records):
        return np.mean([unit(vectors[r["path"]]) @ unit(vectors[str(avoided)]) for r in records])

    assert closeness(away) < closeness(plain)


def test_vectors_through_a_real_pipe_are_seeds(shelf, qbsd_process):
    seeds = [shelf.clips["Alpha"][5], shelf.clips["Gamma"][1]]
    piped = qbsd_process.shell(
        f"qbsd tag --vector '{seeds[0]}' '{seeds[1]}' | qbsd similar - --top 4 --index '{shelf.index}'"
    )
    assert piped.returncode == 0, piped
    direct = shelf.json("similar", *seeds, "--top", "4")
    assert [r["path"] for r in piped.json()] == [r["path"] for r in direct]


def same_list(piped: list[dict], direct: list[dict]) -> bool:
    """The same songs in the same order with the same fields; a score may differ by one unit
    of its fourth decimal, since a JSON line carries its vector to six decimals and a score
    near a rounding boundary can round either way."""
    return len(piped) == len(direct) and all(
        one == pytest.approx(other, abs=1.5e-4) for one, other in zip(piped, direct)
    )


def test_each_dash_takes_the_next_line_of_stdin(shelf):
    first, second, third = shelf.clips["Alpha"][3], shelf.clips["Beta"][7], shelf.clips["Gamma"][0]
    tagged = shelf.qbsd("tag", "--vector", first, second)
    assert tagged.returncode == 0, tagged

    def piped(*args, lines=tagged.stdout):
        return shelf.qbsd(*args, "--format", "json", index=shelf.index, input=lines)

    assert same_list(piped("path", "-", "-", "--steps", "5").json(), shelf.json("path", first, second, "--steps", "5"))
    assert same_list(piped("similar", "-", "--not", "-").json(), shelf.json("similar", first, "--not", second))
    extra = shelf.qbsd("tag", "--vector", third).stdout
    too_many = piped("similar", "-", "--not", "-", lines=tagged.stdout + extra)
    assert too_many.returncode == 2, too_many
    assert too_many.err_lines == ["qbsd: stdin: 3 JSON lines for 2 '-' arguments: each '-' takes one line"]


def test_a_tag_word_moves_the_list_towards_it(shelf):
    seed = shelf.clips["Alpha"][0]
    vectors, tags = shelf.vectors()
    calm = tags.index("mood:calm")
    plain = shelf.json("similar", seed, "--top", "6")
    calmer = shelf.json("similar", seed, "--tag", "calm", "--top", "6")

    def mean_calm(records):
        return float(np.mean([vectors[r["path"]][calm] for r in records]))

    assert mean_calm(calmer) > mean_calm(plain)
    # the same query seen from the words' side
    assert shelf.json("search", "calm", "--like", seed, "--top", "6") == calmer


def test_an_unknown_tag_word_is_a_usage_error(shelf):
    result = shelf.run("similar", shelf.clips["Alpha"][0], "--tag", "calmish")
    assert result.returncode == 2, result
    assert len(result.err_lines) == 1 and "unknown tag 'calmish'" in result.stderr


# ------------------------------------------------------------------ duplicates


def test_copies_and_reencodes_are_shown_once(shelf):
    original = shelf.clips["Alpha"][0]
    copies = {str(shelf.special[name]) for name in ("byte copy", "mp3 copy", "flac copy")}
    neighbour = shelf.clips["Alpha"][6]
    listed = [r["path"] for r in shelf.json("similar", neighbour, "--top", "40")]
    assert len(({str(original)} | copies) & set(listed)) == 1  # one of the four, once
    kept = [r["path"] for r in shelf.json("similar", neighbour, "--top", "40", "--keep-duplicates")]
    assert ({str(original)} | copies) <= set(kept)
    # the seed's own copies never come back as "like" it
    like_original = {r["path"] for r in shelf.json("similar", original, "--top", "40")}
    assert not copies & like_original


def test_same_artist_and_title_is_one_recording_when_the_audio_agrees(shelf):
    tagged = {str(shelf.special["tagged flac"]), str(shelf.special["tagged mp3"])}
    vectors, _tags = shelf.vectors()
    a, b = (unit(vectors[path]) for path in sorted(tagged))
    assert float(a @ b) < duplicate_threshold(IndexStore(shelf.index, create=False).model_id)  # not by vector
    listed = {r["path"] for r in shelf.json("search", "calm", "--top", "100")}
    assert len(tagged & listed) == 1  # the names make them candidates, their fingerprints agree


def test_names_alone_are_never_one_recording(shelf, tmp_path):
    music = tmp_path / "music"
    clips = [clip for clips in shelf.clips.values() for clip in clips]
    ripped = {"artist": "Unknown Artist", "title": "Track 01"}
    same_name = {"artist": "Nina Test", "title": "Song Two"}
    songs = {
        "ripped a": reencode(clips[0], music / "ripped a.flac", ripped, seconds=10.0),
        "ripped b": reencode(clips[8], music / "ripped b.flac", ripped, seconds=10.0),
        "10 s": reencode(clips[16], music / "ten.flac", same_name, seconds=10.0),
        "10 s again": reencode(clips[16], music / "ten again.ogg", same_name, seconds=10.0),
        "11.5 s": reencode(clips[9], music / "eleven and a half.flac", same_name, seconds=11.5),
        "14 s": reencode(clips[1], music / "fourteen.flac", same_name, seconds=14.0),
    }
    index = tmp_path / "index"
    built = shelf.qbsd("index", music, index=index)
    assert built.returncode == 0, built
    groups = shelf.qbsd("index", "--duplicates", index=index)
    assert groups.returncode == 0, groups
    # a different clip of the same name and length (11.5 s) is not the same recording
    assert {record["path"] for record in groups.json()} == {str(songs["10 s"]), str(songs["10 s again"])}
    listed = {r["path"] for r in shelf.qbsd("search", "calm", "--format", "json", index=index).json()}
    assert len(listed & {str(songs["10 s"]), str(songs["10 s again"])}) == 1
    assert {str(songs[name]) for name in ("ripped a", "ripped b", "11.5 s", "14 s")} <= listed


def test_index_duplicates_lists_the_groups(shelf):
    result = shelf.run("index", "--duplicates")
    assert result.returncode == 0, result
    groups: dict[int, set[str]] = {}
    for record in result.json():
        groups.setdefault(record["group"], set()).add(record["path"])
    expected = {str(shelf.clips["Alpha"][0])} | {
        str(shelf.special[name]) for name in ("byte copy", "mp3 copy", "flac copy")
    }
    found = sorted(groups.values(), key=len)
    assert expected in found
    assert {str(shelf.special["tagged flac"]), str(shelf.special["tagged mp3"])} in found
    assert {str(shelf.clips["Alpha"][1]), str(shelf.special["same twice"])} in found


# ------------------------------------------------------------------ caps, reasons, order


@pytest.mark.parametrize("command", ["similar", "search", "path"])
def test_per_artist_and_per_album_cap_the_list(shelf, command):
    if command == "similar":
        args = ["similar", shelf.clips["Alpha"][2], "--top", "12"]
    elif command == "search":
        args = ["search", "calm", "--top", "12"]
    else:
        args = ["path", shelf.clips["Beta"][5], shelf.clips["Gamma"][2], "--steps", "8"]
    uncapped = shelf.json(*args)
    capped = shelf.json(*args, "--per-artist", "2")
    per_artist: dict[str, int] = {}
    for record in capped:
        if "artist" in record:
            per_artist[record["artist"]] = per_artist.get(record["artist"], 0) + 1
    assert max(per_artist.values()) <= 2
    assert max(list(map(lambda r: r.get("artist"), uncapped)).count(a) for a in ("Alpha", "Beta")) > 2
    by_album = shelf.json(*args, "--per-album", "1")
    albums = [r["album"] for r in by_album if "album" in r]
    assert len(albums) == len(set(albums))


def test_explain_gives_three_reasons(shelf, tmp_path):
    seed = shelf.clips["Beta"][6]
    vectors, tags = shelf.vectors()
    records = shelf.json("similar", seed, "--top", "3", "--explain")
    query = vectors[str(seed)]
    for record in records:
        because = record["because"]
        assert len(because) == 3
        song = vectors[record["path"]]
        strongest = sorted(range(len(tags)), key=lambda i: -query[i] * song[i])[:3]
        assert [entry["tag"] for entry in because] == [tags[i] for i in strongest]
        assert [entry["score"] for entry in because] == pytest.approx([song[i] for i in strongest], abs=1e-4)
    named = shelf.json("search", "calm", "sad", "--top", "3", "--explain")
    asked = {tags[i] for i in resolve_words(["calm", "sad"], tags)}  # mood:sad and descriptor:sad
    for record in named:
        because = record["because"]
        assert len(because) == min(3, len(asked))  # every named tag scores above 0 in a song
        assert {entry["tag"] for entry in because} <= asked
        assert [entry["score"] for entry in because] == sorted((entry["score"] for entry in because), reverse=True)
        assert [entry["score"] for entry in because] == pytest.approx(
            [vectors[record["path"]][tags.index(entry["tag"])] for entry in because], abs=1e-4
        )
    table = shelf.run("search", "calm", "--top", "3", "--explain", "--format", "table")
    assert "because" in table.stdout and "calm 0." in table.stdout
    assert "because" not in shelf.json("search", "calm", "--top", "3")[0]


def test_the_same_query_gives_the_same_list_ties_by_path(shelf):
    query = shelf.clips["Gamma"][3]
    args = ("similar", query, "--top", "40", "--keep-duplicates")
    first = shelf.json(*args)
    assert all(shelf.json(*args) == first for _ in range(2))
    assert shelf.json(*args, "--exact") == first
    twins = [r["path"] for r in first if r["path"] in {str(shelf.clips["Alpha"][1]), str(shelf.special["same twice"])}]
    assert twins == sorted(twins, key=lambda path: path.encode())  # equal vectors: by path
    positions = [r["path"] for r in first]
    assert abs(positions.index(twins[0]) - positions.index(twins[1])) == 1


# ------------------------------------------------------------------ path


def test_path_moves_evenly_from_start_to_end(shelf):
    start, end = shelf.clips["Alpha"][3], shelf.clips["Beta"][7]
    records = shelf.json("path", start, end, "--steps", "7")
    assert len(records) == 7
    assert records[0]["path"] == str(start) and records[-1]["path"] == str(end)
    assert len({r["path"] for r in records}) == 7
    vectors, _tags = shelf.vectors()
    a, b = unit(vectors[str(start)]), unit(vectors[str(end)])
    used = {str(start), str(end)}
    threshold = duplicate_threshold(IndexStore(shelf.index, create=False).model_id)
    for step, record in enumerate(records[1:-1], 1):
        point = unit((1 - step / 6) * a + step / 6 * b)
        allowed = [
            path
            for path in vectors
            if path not in used and all(unit(vectors[path]) @ unit(vectors[u]) < threshold for u in used)
        ]
        # nearest first; equal cosines by path
        best = sorted(allowed, key=lambda path: (-float(unit(vectors[path]) @ point), path.encode()))[0]
        assert record["path"] == best
        assert record["score"] == pytest.approx(float(unit(vectors[best]) @ point), abs=1e-3)
        used.add(best)
    # the first half nearer the start, the second nearer the end
    towards_end = [float(unit(vectors[r["path"]]) @ b - unit(vectors[r["path"]]) @ a) for r in records]
    assert np.mean(towards_end[:3]) < np.mean(towards_end[-3:])


def test_a_path_cut_short_by_the_caps_says_why(shelf):
    start, end = shelf.clips["Alpha"][3], shelf.clips["Beta"][7]
    result = shelf.run("path", start, end, "--steps", "12", "--per-artist", "1", "--format", "json")
    assert result.returncode == 0, result
    records = result.json()
    assert 2 < len(records) < 12
    assert (records[0]["path"], records[-1]["path"]) == (str(start), str(end))
    artists = [record["artist"] for record in records]
    assert len(artists) == len(set(artists))
    assert result.err_lines == [
        f"qbsd: the path has {len(records)} songs, not --steps 12: "
        "the other songs are duplicates of songs listed or over --per-artist 1"
    ]


def test_path_in_every_format(shelf):
    start, end = shelf.special["tagged ogg"], shelf.clips["Beta"][0]
    as_json = shelf.json("path", start, end, "--steps", "4")
    m3u = shelf.run("path", start, end, "--steps", "4", "--format", "m3u")
    assert m3u.returncode == 0, m3u
    assert m3u.lines[0] == "#EXTM3U"
    assert m3u.lines[1] == "#EXTINF:4,Synth - A Chord"
    assert m3u.lines[2::2] == [r["path"] for r in as_json]
    table = shelf.run("path", start, end, "--steps", "4", "--format", "table", "--explain")
    assert table.returncode == 0, table
    assert "A Chord" in table.stdout and "because" in table.stdout
    line = {**shelf.qbsd("tag", "--vector", start).json()[0], "path": ""}  # an end without a file
    pathless = shelf.qbsd(
        "path", "-", end, "--steps", "4", "--format", "m3u", index=shelf.index, input=json.dumps(line)
    )
    assert pathless.returncode == 0, pathless
    assert "" not in pathless.lines and len(pathless.lines) == 1 + 2 * 3
    listed = shelf.run("search", "calm", "--top", "100", "--format", "table")
    assert "Tapes" in listed.stdout  # the tagged FLAC's album, in no path


def test_bad_counter_examples_and_likes_are_one_line_each(shelf, tmp_path):
    seed = shelf.clips["Alpha"][3]
    missing, broken = tmp_path / "missing.mp3", AudioFactory(tmp_path).broken("broken.mp3")
    for option_args in (("similar", seed, "--not"), ("search", "calm", "--not"), ("search", "calm", "--like")):
        for bad, status, words in ((missing, 2, "no such file"), (broken, 1, "broken.mp3")):
            result = shelf.run(*option_args, bad)
            assert result.returncode == status, result
            assert len(result.err_lines) == 1 and result.err_lines[0].startswith("qbsd: "), result
            assert words in result.stderr, result
            assert result.stdout == ""


def test_path_errors_are_one_line_each(shelf, tmp_path):
    start, end = shelf.clips["Alpha"][3], shelf.clips["Beta"][7]
    broken = AudioFactory(tmp_path).broken("broken.mp3")
    cases = [
        (("path", tmp_path / "missing.mp3", end), 2, "no such file"),
        (("path", broken, end), 1, "broken.mp3"),
        (("path", start, end, "--steps", "0"), 2, "at least 2"),
        (("path", start, start), 2, "the same song"),
        (("path", start, end, "--steps", "500"), 2, "at most"),
    ]
    for args, status, words in cases:
        result = shelf.run(*args)
        assert result.returncode == status, result
        assert len(result.err_lines) == 1 and result.err_lines[0].startswith("qbsd: "), result
        assert words in result.stderr, result
        assert result.stdout == ""
