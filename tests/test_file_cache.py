"""Per-file cache entries are named by the file's bytes: a re-mounted file (new mtime) keeps
its cached features, an edited one does not, and entries under the older path+mtime name
are taken over instead of recomputed."""

import hashlib
import os

import numpy as np

from qbsd_cli.training import feature_cache, teacher
from qbsd_cli.training.file_cache import content_key, entry_path


def test_same_bytes_same_key_edited_bytes_new_key(tmp_path):
    song = tmp_path / "song.mp3"
    song.write_bytes(b"ID3" + bytes(range(256)) * 100)
    first = content_key(str(song))
    info = song.stat()
    os.utime(song, ns=(info.st_atime_ns, info.st_mtime_ns + 7_000_000_000))  # as a re-mount does
    assert content_key(str(song)) == first
    copy = tmp_path / "elsewhere.mp3"
    copy.write_bytes(song.read_bytes())
    assert content_key(str(copy)) == first
    song.write_bytes(song.read_bytes()[:-1] + b"x")
    assert content_key(str(song)) != first


def test_legacy_entry_is_renamed_not_recomputed(tmp_path):
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF" + b"\0" * 4000)
    folder = tmp_path / "cache"
    folder.mkdir()
    info = song.stat()
    legacy = hashlib.sha1(f"{os.path.abspath(song)}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()[:20]
    np.save(folder / (legacy + ".npy"), np.arange(3.0))
    target = feature_cache._song_cache_path(str(folder), str(song))
    assert os.path.basename(target) == "c" + content_key(str(song)) + ".npy"
    assert np.array_equal(np.load(target), np.arange(3.0))
    assert not (folder / (legacy + ".npy")).exists()


def test_teacher_outputs_take_over_legacy_entries(tmp_path):
    song = tmp_path / "song.ogg"
    song.write_bytes(b"OggS" + b"\1" * 5000)
    cache = tmp_path / "teacher"
    cache.mkdir()
    stem = teacher.legacy_cache_key(str(song))
    np.savez(cache / (stem + ".npz"), segment=np.zeros(1, np.int32), path=np.array(str(song)))
    loaded = teacher.load_outputs(str(song), str(cache))
    assert loaded is not None and loaded["segment"].shape == (1,)
    assert os.listdir(cache) == [os.path.basename(entry_path(str(cache), str(song), ".npz"))]
