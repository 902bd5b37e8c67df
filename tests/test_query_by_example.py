"""Query by example on the folds (training/retrieval_metrics.py), on tiny hand-checked data."""

import numpy as np
import pytest

from qbsd_cli.training.retrieval_metrics import (
    expected_at_random,
    nearest,
    query_by_example,
    song_label_sets,
    standardised_per_fold,
)

# six clips, two folds: clips 0-2 in fold 0, clips 3-5 in fold 1
FOLD_OF = np.array([0, 0, 0, 1, 1, 1])
QUADRANTS = np.array([0, 1, 2, 0, 1, 1])
GENRES = np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0], [0, 0]])
MOODS = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_nearest_orders_by_cosine_and_breaks_ties_by_index():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    # [1, 0] has cosine 1 with items 0 and 2 (a tie: 0 first), 0.707 with 3, 0 with 1
    assert nearest(np.array([[1.0, 0.0]]), items, 4).tolist() == [[0, 2, 3, 1]]
    # scale does not matter, only direction
    assert nearest(np.array([[5.0, 5.0]]), items, 1).tolist() == [[3]]


def test_hand_checked_figures_at_k_1():
    # vectors chosen so each query's nearest training clip is known:
    # fold 0's model: clip 0 -> 3, clip 1 -> 4, clip 2 -> 5
    # fold 1's model: clip 3 -> 1, clip 4 -> 0, clip 5 -> 2
    angles = {0: [0, 1, 2, 0, 1, 2], 1: [1, 2, 0, 2, 1, 0]}
    vectors = {f: np.stack([[np.cos(a), np.sin(a)] for a in angles[f]]) for f in (0, 1)}
    result = query_by_example(vectors, FOLD_OF, QUADRANTS, GENRES, MOODS, k=1)
    # quadrant: 0-3 same (0=0), 1-4 same (1=1), 2-5 no (2 vs 1), 3-1 no, 4-0 no, 5-2 no -> 2/6
    assert result["qbe_quadrant_p@1"] == pytest.approx(2 / 6)
    # genre: 0-3 {0}&{1} no, 1-4 {1}&{0} no, 2-5 {0,1}&{} no, 3-1 {1}&{1} yes,
    # 4-0 {0}&{0} yes, 5-2 {}&{0,1} no -> 2/6
    assert result["qbe_genre_p@1"] == pytest.approx(2 / 6)
    # mood Jaccard: 0-3 {0,1} vs {0} = 1/2; 1-4 {2} vs {1,2} = 1/2; 2-5 both empty = 0;
    # 3-1 {0} vs {2} = 0; 4-0 {1,2} vs {0,1} = 1/3; 5-2 both empty = 0 -> (4/3)/6
    assert result["qbe_mood_jaccard@1"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 6)


def test_each_fold_uses_its_own_model_for_queries_and_items():
    base = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    other = base.copy()
    other[0], other[1] = [0.0, 1.0], [1.0, 0.0]  # fold 1's model: clip 1 (not 0) lies by clip 3
    result = query_by_example({0: base, 1: other}, FOLD_OF, QUADRANTS, GENRES, MOODS, k=1)
    # fold 0 on `base`: 0 -> 3 (quadrant 0 = 0, hit); 1 -> 4 (tie of 4 and 5: the lower;
    # 1 = 1, hit); 2 -> 4 (2 vs 1, miss). fold 1 on `other`: 3 -> 1 (0 vs 1, miss);
    # 4 -> 0 (tie of 0 and 2; 1 vs 0, miss); 5 -> 0 (miss): 2 of 6
    assert result["qbe_quadrant_p@1"] == pytest.approx(2 / 6)
    # with fold 0's model for every query it would be 5 of 6 (3 -> 0, 4 -> 1, 5 -> 1)
    assert query_by_example(base, FOLD_OF, QUADRANTS, GENRES, MOODS, k=1)["qbe_quadrant_p@1"] == pytest.approx(5 / 6)


def test_k_larger_than_one_averages_over_the_list_and_one_array_serves_every_fold():
    vectors = np.eye(6)[:, :6]  # all orthogonal: every cosine 0, ties -> training clips in order
    result = query_by_example(vectors, FOLD_OF, QUADRANTS, GENRES, MOODS, k=2)
    # fold 0 queries get clips 3, 4; fold 1 queries get clips 0, 1
    # quadrant: 0:(0,1)->1/2, 1:(0,1)->1/2, 2:(0,1)->0, 3:(0,1)->1/2, 4:(0,1)->1/2, 5:(0,1)->1/2
    assert result["qbe_quadrant_p@2"] == pytest.approx((0.5 * 5) / 6)
    # genre: 0 {0} vs 3 {1}, 4 {0}: 1/2; 1 {1} vs {1}, {0}: 1/2; 2 {0,1}: 1; 3 {1} vs 0 {0}, 1 {1}: 1/2;
    # 4 {0}: 1/2; 5 {}: 0
    assert result["qbe_genre_p@2"] == pytest.approx((0.5 + 0.5 + 1 + 0.5 + 0.5 + 0) / 6)


def test_song_label_sets_reads_the_tag_names():
    tags = ["quadrant:q1", "quadrant:q2", "quadrant:q3", "quadrant:q4", "genre:jazz", "mood:calm", "mood:sad"]
    labels = np.array([[0, 0, 1, 0, 1, 0, 1], [1, 0, 0, 0, 0, 1, 1]], dtype=np.uint8)
    quadrants, genres, moods = song_label_sets(tags, labels)
    assert quadrants.tolist() == [2, 0]
    assert genres.tolist() == [[1], [0]]
    assert moods.tolist() == [[0, 1], [1, 1]]


def test_standardised_per_fold_uses_only_the_training_folds():
    features = np.array([[1.0, 5.0], [3.0, 5.0], [10.0, 5.0], [20.0, 5.0]])
    fold_of = np.array([0, 0, 1, 1])
    per_fold = standardised_per_fold(features, fold_of)
    # fold 0's statistics come from clips 2, 3: mean 15, std 5; the constant column stays 0
    assert per_fold[0][:, 0].tolist() == pytest.approx([-2.8, -2.4, -1.0, 1.0])
    assert per_fold[0][:, 1].tolist() == [0.0, 0.0, 0.0, 0.0]
    # fold 1's from clips 0, 1: mean 2, std 1
    assert per_fold[1][:, 0].tolist() == pytest.approx([-1.0, 1.0, 8.0, 18.0])


def test_expected_at_random_averages_over_every_training_clip():
    result = expected_at_random(FOLD_OF, QUADRANTS, GENRES, MOODS)
    # quadrant: fold 0 queries against (0, 1, 1): 1/3, 2/3, 0; fold 1 against (0, 1, 2): 1/3 each
    assert result["qbe_quadrant_p@10"] == pytest.approx((1 / 3 + 2 / 3 + 0 + 1 / 3 * 3) / 6)


def test_a_fold_scores_every_clip_and_keeps_the_test_rows_as_out_of_fold(tmp_path):
    from qbsd_cli.features import FeatureParams
    from qbsd_cli.training.evaluation import _run_fold, all_clips_path

    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(50, 39)).astype(np.float32) for _ in range(6)]
    labels = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 0]], dtype=np.uint8)
    path = str(tmp_path / "fold1.npy")
    job = ("logreg", 1, frames, labels, [str(i) for i in range(6)], FOLD_OF, FeatureParams(), path, 0)
    _run_fold(job)
    every, out_of_fold = np.load(all_clips_path(path)), np.load(path)
    assert every.shape == (6, 2)
    assert np.array_equal(out_of_fold, every[FOLD_OF == 1])


def test_fold_vectors_combine_ensembles_and_blends_per_fold(tmp_path, monkeypatch):
    from qbsd_cli.training import evaluation
    from qbsd_cli.training.recipes import Blend

    for name, value in (("a", 1.0), ("b", 3.0), ("s", 10.0)):
        (tmp_path / "folds" / name).mkdir(parents=True)
        for fold in (0, 1):
            np.save(tmp_path / "folds" / name / f"fold{fold}.all.npy", np.full((3, 2), value + fold, np.float32))
    monkeypatch.setattr(evaluation, "ENSEMBLES", {"ab": ["a", "b"]})
    monkeypatch.setattr(evaluation, "BLENDS", {"ab-s": Blend("ab", 0.25, "s")})
    assert evaluation.fold_vectors(str(tmp_path), "ab", 1)[0, 0] == pytest.approx(3.0)  # mean of 2 and 4
    # 0.75 x mean(1, 3) + 0.25 x 10 at fold 0
    assert evaluation.fold_vectors(str(tmp_path), "ab-s", 0)[0, 0] == pytest.approx(0.75 * 2 + 0.25 * 10)
