"""Loaders for the 4Q, CAL500 and CSV layouts, on the shared data and on generated stand-ins."""

import os
import shutil

import numpy as np
import pytest
import soundfile

from qbsd_cli.training.datasets import load_cal500, load_moods4q, load_tag_csv


def test_moods4q_vocabulary(moods4q_root):
    songs = load_moods4q(moods4q_root)
    assert len(songs.paths) == 800 and all(os.path.exists(p) for p in songs.paths[:20])
    assert songs.tags[:4] == ["quadrant:q1", "quadrant:q2", "quadrant:q3", "quadrant:q4"]
    assert {"mood:calm", "genre:pop/rock", "genre:stage & screen"} <= set(songs.tags)
    counts = songs.labels.sum(axis=0)
    assert counts[4:].min() >= 10  # every mood and genre kept has at least 10 clips
    assert (songs.labels[:, :4].sum(axis=1) == 1).all()  # one quadrant per clip


def test_cal500_with_stand_in_audio(cal500_root, tmp_path):
    for name in ("vocab.txt", "songNames.txt", "hardAnnotations.txt"):
        shutil.copy(os.path.join(cal500_root, name), tmp_path / name)
    songs = load_cal500(str(tmp_path))
    assert songs.labels.shape == (502, 174)
    assert songs.tags[0] == "emotion:angry_/_agressive"
    # the loader points at <songName>.mp3 beside the annotations: make three stand-ins
    rate = 22050
    for path in songs.paths[:3]:
        tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
        soundfile.write(path, tone, rate, format="MP3")
    from qbsd_cli.audio import decode

    assert decode(songs.paths[0]).duration == pytest.approx(1.0, abs=0.1)


def test_plain_csv(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "tags.csv").write_text("path,tags\na.wav,calm; mood:happy\nsub/b.flac,Calm\n")
    songs = load_tag_csv(str(tmp_path / "tags.csv"))
    assert songs.tags == ["mood:happy", "tag:calm"]
    assert songs.paths[0] == str(tmp_path / "a.wav")
    np.testing.assert_array_equal(songs.labels, [[1, 1], [0, 1]])
