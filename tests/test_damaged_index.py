"""A damaged index is one clear line that says how to rebuild it, and `qbsd index
--rebuild DIR` does; an index run with another model is refused before it changes
anything (other model-mismatch cases are in test_similar.py)."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from helpers import AudioFactory, assert_no_traceback, copy_clips, model_with_another_id
from reliability import summary

#: Songs needed before `similar --top 1` goes through the Annoy forest (store.py scans
#: every song exactly while SEARCH_K_FACTOR * trees * 10 = 10,000 would see them all).
ANNOY_THRESHOLD = 10_000


@pytest.fixture
def indexed(qbsd, tmp_path, clips):
    music = tmp_path / "music"
    songs = copy_clips(clips[:6], music)
    index = tmp_path / "index"
    built = qbsd("index", music, index=index)
    assert built.returncode == 0, built
    return music, index, songs


def assert_damage_reported(result, index):
    assert result.returncode == 1, result
    assert_no_traceback(result)
    [message] = result.err_lines
    assert message.startswith(f"qbsd: the index at {index} is damaged ("), message
    assert "`qbsd index --rebuild DIR`" in message
    assert result.stdout == ""


def assert_works(qbsd, index, songs, count):
    similar = qbsd("similar", songs[0], "--top", "1", "--format", "json", index=index)
    assert similar.returncode == 0, similar
    assert len(similar.json()) == 1
    searched = qbsd("search", "calm", "--top", "100", "--format", "json", index=index)
    assert searched.returncode == 0, searched
    assert len(searched.json()) == count


@pytest.mark.parametrize("damage", ["garbage", "garbage-after-header", "truncated"])
def test_damaged_database(qbsd, indexed, damage):
    music, index, songs = indexed
    database = index / "songs.sqlite"
    data = database.read_bytes()
    noise = random.Random(7).randbytes(len(data))
    if damage == "garbage":
        database.write_bytes(noise)
    elif damage == "garbage-after-header":  # a valid header, pages of noise
        database.write_bytes(data[:100] + noise[100:])
    else:
        database.write_bytes(data[: len(data) // 3])
    for args in (["similar", songs[0]], ["search", "calm"], ["index", music], ["index", "--errors"]):
        assert_damage_reported(qbsd(*args, index=index), index)
    rebuilt = qbsd("index", "--rebuild", music, index=index)
    assert rebuilt.returncode == 0, rebuilt
    assert summary(rebuilt)["added"] == len(songs)
    assert_works(qbsd, index, songs, len(songs))


def test_damaged_annoy_file(qbsd, indexed, tmp_path):
    music, index, songs = indexed
    # Enough songs for the Annoy forest to be used: vectors of the same model from a file.
    model_id = re.match(r"model (\S+),", qbsd("tags", "--verbose").err_lines[0]).group(1)
    n_tags = len(qbsd("tags").lines)
    rng = np.random.default_rng(0)
    jsonl = tmp_path / "many.jsonl"
    with open(jsonl, "w") as handle:
        for number in range(ANNOY_THRESHOLD + 50):
            handle.write(
                json.dumps(
                    {
                        "path": f"/elsewhere/song-{number}.mp3",
                        "model": model_id,
                        "vector": np.round(rng.random(n_tags), 3).tolist(),
                    }
                )
                + "\n"
            )
    ingested = qbsd("index", "--from-jsonl", jsonl, index=index)
    assert ingested.returncode == 0, ingested
    [forest] = index.glob("songs-*.annoy")
    assert_works(qbsd, index, songs, 100)

    forest.write_bytes(forest.read_bytes()[: forest.stat().st_size // 2])
    assert_damage_reported(qbsd("similar", songs[0], "--top", "1", index=index), index)
    rebuilt = qbsd("index", "--rebuild", music, index=index)
    assert rebuilt.returncode == 0, rebuilt
    assert summary(rebuilt)["songs"] == len(songs)  # afresh: only what DIR holds
    assert_works(qbsd, index, songs, len(songs))


def test_another_model_changes_nothing(qbsd, indexed, tmp_path):
    """Refused before anything is written: a deleted file is not forgotten either."""
    music, index, songs = indexed
    model_id, other_id, other_model = model_with_another_id(qbsd, tmp_path)
    songs[0].unlink()
    AudioFactory(music).chord("new.wav")
    refused = qbsd("index", music, index=index, env={"QBSD_MODEL": str(other_model)})
    assert refused.returncode == 1, refused
    assert_no_traceback(refused)
    [message] = refused.err_lines
    assert model_id in message and other_id in message and "--rebuild" in message
    listed = qbsd("search", "calm", "--top", "100", "--format", "json", index=index)
    assert str(songs[0]) in {record["path"] for record in listed.json()}  # not removed
    assert len(listed.json()) == len(songs)

    switched = qbsd("index", "--rebuild", music, index=index, env={"QBSD_MODEL": str(other_model)})
    assert switched.returncode == 0, switched
    assert summary(switched)["songs"] == len(songs)  # five left plus new.wav
