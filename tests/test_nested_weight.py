"""`qbsd evaluate`'s nested choice of a blend's statistics weight (evaluation.nested_weight):
each fold's weight is the one best on the other folds, and the nested scores use each
fold's own choice. Generated scores in a results folder laid out as `qbsd evaluate` writes."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from qbsd_cli.training import evaluation, metrics  # noqa: E402
from qbsd_cli.training.datasets import LabelledSongs  # noqa: E402


def write_folds(folder, method, scores, fold_of):
    (folder / "folds" / method).mkdir(parents=True)
    for fold in np.unique(fold_of):
        np.save(folder / "folds" / method / f"fold{fold}.npy", scores[fold_of == fold])


def test_each_fold_takes_the_weight_best_on_the_other_folds(tmp_path):
    rng = np.random.default_rng(0)
    n_songs, tags = 200, ["quadrant:q1", "quadrant:q2", "quadrant:q3", "quadrant:q4", "mood:calm", "genre:jazz"]
    labels = np.zeros((n_songs, len(tags)), dtype=np.uint8)
    labels[np.arange(n_songs), rng.integers(0, 4, n_songs)] = 1
    labels[:, 4:] = rng.random((n_songs, 2)) < 0.3
    songs = LabelledSongs([f"{i}.mp3" for i in range(n_songs)], [str(i) for i in range(n_songs)], tags, labels, "")
    fold_of = np.arange(n_songs) % 5
    informative = labels + rng.normal(0, 0.8, labels.shape)  # the "statistics half" knows the labels
    noise = rng.normal(0, 1, labels.shape)  # the "patch half" does not
    write_folds(tmp_path, "cnn-band-student", noise.astype(np.float32), fold_of)
    write_folds(tmp_path, "mlp-student-bands", informative.astype(np.float32), fold_of)
    row = evaluation.nested_weight(songs, str(tmp_path), fold_of, "cnn-band-student-bands")
    assert len(row["per_fold_weights"]) == 5 and row["median_weight"] == np.median(row["per_fold_weights"])
    for fold, chosen in enumerate(row["per_fold_weights"]):
        others = fold_of != fold
        maps = {
            float(w): metrics.retrieval_scores(labels[others], ((1 - w) * noise + w * informative)[others])["map"]
            for w in evaluation.WEIGHT_GRID
        }
        assert maps[chosen] == max(maps.values())
    assert min(row["per_fold_weights"]) >= 0.5  # the informative half wins the weight
    nested = np.zeros(labels.shape)
    for fold, chosen in enumerate(row["per_fold_weights"]):
        mine = fold_of == fold
        nested[mine] = ((1 - chosen) * noise + chosen * informative)[mine]
    assert row["nested_map"] == pytest.approx(metrics.retrieval_scores(labels, nested)["map"], rel=1e-6)
    assert row["shipped_weight"] == evaluation.BLENDS["cnn-band-student-bands"].statistics_weight
