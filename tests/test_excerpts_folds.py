"""benchmarks/excerpts_folds.py: query by excerpt out of fold from saved CV windows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "excerpts_folds.py"


def _module():
    spec = importlib.util.spec_from_file_location("excerpts_folds", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folds(tmp_path: Path, n_clips: int = 40, n_windows: int = 9, confusable: int | None = None):
    """A results folder with 2 folds of made-up window features: each clip its own point in
    the 500-d space plus noise; with `confusable`, that clip's middle windows are the next
    clip's, so its excerpt should find the other clip first."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_clips, 500)).astype(np.float32)
    labels = (centres[:, :3] > 0).astype(np.int64)  # three tags the heads can learn
    fold_of = np.arange(n_clips) % 2
    results = tmp_path / "results"
    method = results / "folds" / "cnn-test-student"
    method.mkdir(parents=True)
    np.save(results / "folds.npy", fold_of)
    windows = [centres[i] + 0.1 * rng.normal(size=(n_windows, 500)).astype(np.float32) for i in range(n_clips)]
    if confusable is not None:
        middle = (n_windows - 3) // 2
        windows[confusable][middle : middle + 3] = centres[confusable + 1] + 0.01
    for fold in range(2):
        np.savez(
            method / f"fold{fold}.windows.npz",
            features=np.concatenate(windows),
            counts=np.array([len(w) for w in windows]),
        )
    return method, labels


def test_a_clip_whose_excerpt_is_its_own_music_finds_itself_first(tmp_path):
    method, labels = _folds(tmp_path)
    ranks = _module().excerpt_ranks(method, labels)
    assert ranks.shape == (40,)
    assert (ranks >= 1).all()
    assert (ranks == 1).mean() > 0.9


def test_an_excerpt_that_sounds_like_another_clip_does_not_find_its_own_first(tmp_path):
    method, labels = _folds(tmp_path, confusable=6)
    ranks = _module().excerpt_ranks(method, labels)
    assert ranks[6] > 1


def test_two_folders_are_compared_clip_by_clip(tmp_path):
    steady, labels = _folds(tmp_path / "a")
    confused, _ = _folds(tmp_path / "b", confusable=6)
    text = _module().report([steady, confused], labels)
    rows = [line for line in text.splitlines() if line.startswith("| cnn-test-student")]
    assert len(rows) == 2
    assert rows[0].startswith("| cnn-test-student (results) | 1.000 |")
    # the only clip that differs is found first by the steady student alone
    assert "found first only by cnn-test-student: 1; only by cnn-test-student: 0" in text
