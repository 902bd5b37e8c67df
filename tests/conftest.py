"""Fixtures: real clips from ../shared (skipped, saying why, where it is absent), generated
audio, and `qbsd` run in this process (`qbsd`) or as a real subprocess (`qbsd_process`).
The helpers behind them are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    CAL500,
    CLIPS_DIR,
    NO_CLIPS,
    SHARED_DATA,
    AudioFactory,
    InProcessQbsd,
    Library,
    Qbsd,
    copy_clips,
    pick_clips,
)

#: Test files whose tests build wheels, start a Dask cluster, train networks, run the
#: teachers, drive a browser, or wait out kills and time limits: `python -m pytest -m "not slow"` leaves
#: them out for a quick local loop; CI runs everything.
SLOW_FILES = frozenset(
    {
        "test_install.py",
        "test_cluster.py",
        "test_training_pipeline.py",
        "test_train_command.py",
        "test_teacher.py",
        "test_teacher_pruning.py",
        "test_finetune.py",
        "test_band_student.py",
        "test_student.py",
        "test_accurate_model.py",
        "test_interrupted.py",
        "test_timeout.py",
        "test_concurrent.py",
        "test_fuzz_decode.py",
        "test_rebuild_keeps_index.py",
        "test_damaged_index.py",
        "test_nested_weight.py",
        "test_read_only_index.py",
        "test_map.py",
    }
)
#: Single slow tests in files that are otherwise quick.
SLOW_TESTS = frozenset(
    {
        "test_store.py::test_annoy_agrees_with_exact_search",
        "test_features.py::test_matches_librosa_on_real_clips",
        "test_bad_input.py::test_file_without_read_permission",
        "test_map.py::test_a_hundred_thousand_songs",
    }
)


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_data: needs the real clips of ../shared/data (skipped without it)")
    config.addinivalue_line("markers", "slow: builds, clusters, training, teachers, kills (`-m 'not slow'` skips)")


def pytest_collection_modifyitems(items):
    for item in items:
        # a test that uses the real clips is marked, so `-m "not shared_data"` runs what a
        # clone without ../shared can run
        if {"clips", "clip_paths", "moods4q_root", "library", "cal500_root"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("shared_data")
        if item.path.name in SLOW_FILES or f"{item.path.name}::{item.originalname}" in SLOW_TESTS:
            item.add_marker("slow")


@pytest.fixture
def qbsd(tmp_path) -> Qbsd:
    """`qbsd` run in this process, in a fresh private environment (XDG folders under tmp_path)."""
    return InProcessQbsd(tmp_path / "home")


@pytest.fixture
def qbsd_process(tmp_path) -> Qbsd:
    """`qbsd` as a real subprocess, for signals, pipes and concurrent runs."""
    return Qbsd(tmp_path / "home")


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    """Real 30 s MP3 clips from the shared 4Q data (skips when it is absent)."""
    if not CLIPS_DIR.is_dir():
        pytest.skip(NO_CLIPS)
    found = pick_clips()
    if len(found) < 8:
        pytest.skip(NO_CLIPS)
    return found


@pytest.fixture(scope="session")
def moods4q_root(clips) -> str:
    """The shared 4Q folder (audio/, annotations.csv, metadata.csv)."""
    return str(SHARED_DATA)


@pytest.fixture(scope="session")
def clip_paths(clips) -> list[str]:
    """The real clips as path strings."""
    return [str(clip) for clip in clips]


@pytest.fixture(scope="session")
def cal500_root() -> str:
    """The shared CAL500 annotations folder (skips when it is absent)."""
    if not (CAL500 / "vocab.txt").is_file():
        pytest.skip("../shared/data/cal500 not found: CAL500 tests need the shared data beside the repository")
    return str(CAL500)


@pytest.fixture
def make_audio(tmp_path) -> AudioFactory:
    """Writes generated wav/flac files (or a broken file) under tmp_path/audio."""
    return AudioFactory(tmp_path / "audio")


@pytest.fixture(scope="session")
def library(clips, tmp_path_factory) -> Library:
    """Six real clips plus a wav chord and a flac noise track, indexed with `qbsd index`."""
    home = tmp_path_factory.mktemp("library")
    qbsd = InProcessQbsd(home / "home")
    music = home / "music"
    real = copy_clips(clips[:6], music / "real")
    factory = AudioFactory(music / "generated")
    generated = [factory.chord("chord.wav"), factory.noise("noise.flac")]
    index = home / "index"
    result = qbsd("index", music, "--jobs", "2", index=index)
    assert result.returncode == 0, result
    return Library(qbsd, music, index, real, generated, result)
