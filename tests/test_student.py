"""The statistics student (training/student.py): segment pairs cut as the teacher cache's
segments, and its torch module (what the fast model's graph runs) equal to its sklearn
prediction. Generated data: no corpus or teacher needed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (PyTorch) is not installed")

from qbsd_cli.features import FeatureParams  # noqa: E402
from qbsd_cli.training import student  # noqa: E402
from qbsd_cli.training.network import StatisticsStudentModule  # noqa: E402


def fake_outputs(segments: int, patches_per_segment: int, rng) -> dict:
    n = segments * patches_per_segment
    outputs = {"segment": np.repeat(np.arange(segments, dtype=np.int32), patches_per_segment)}
    for teacher in ("MTT_musicnn", "MSD_musicnn"):
        outputs[f"{teacher}/penultimate"] = rng.random((n, 200), dtype=np.float32)
        outputs[f"{teacher}/probabilities"] = rng.random((n, 50), dtype=np.float32)
    return outputs


def test_segment_pairs_follow_the_teacher_segments():
    rng = np.random.default_rng(0)
    params = FeatureParams()
    frames = rng.standard_normal((int(75 * params.sample_rate / params.hop_length), 39)).astype(np.float32)
    outputs = fake_outputs(3, 10, rng)  # 75 s: two whole 30 s segments and a 15 s one
    statistics, targets = student.segment_pairs(frames, outputs, params)
    assert statistics.shape == (3, 182) and targets.shape == (3, 500)
    second = outputs["MSD_musicnn/probabilities"][10:20].mean(axis=0)
    np.testing.assert_allclose(targets[1, -50:], second, rtol=1e-6)


def test_the_exported_module_computes_the_students_prediction():
    rng = np.random.default_rng(1)
    corpus_x = rng.standard_normal((300, 182))
    corpus_y = np.tanh(corpus_x @ rng.standard_normal((182, 500)) / 10)
    clips_x = [rng.standard_normal((1, 182)) for _ in range(60)]
    clips_y = [np.tanh(x @ rng.standard_normal((182, 500)) / 10) for x in clips_x]
    labels = (rng.random((60, 6)) < 0.3).astype(np.float32)
    labels[:, 5] = 0  # a tag without positives gets its constant
    taught = student.fit_student(corpus_x, corpus_y, clips_x, clips_y, labels)
    queries = rng.standard_normal((8, 182)).astype(np.float32)
    with torch.no_grad():
        exported = StatisticsStudentModule(taught)(torch.from_numpy(queries)).numpy()
    np.testing.assert_allclose(exported, taught.predict(queries), atol=1e-5)
    assert exported.shape == (8, 6)


def test_the_exported_module_adds_the_teacher_derived_tags():
    """With the teacher-tag matrix, the module's last columns are the student's estimate
    of the teachers' tag probabilities, synonyms averaged: StatisticsStudent.teacher_tags."""
    rng = np.random.default_rng(2)
    corpus_x = rng.standard_normal((300, 182))
    corpus_y = rng.random((300, 500))
    clips_x = [rng.standard_normal((2, 182)) for _ in range(40)]
    clips_y = [rng.random((2, 500)) for _ in clips_x]
    labels = (rng.random((40, 4)) < 0.4).astype(np.float32)
    taught = student.fit_student(corpus_x, corpus_y, clips_x, clips_y, labels)
    matrix = np.zeros((100, 3), dtype=np.float32)
    matrix[[0, 1], 0] = 0.5  # two synonyms averaged
    matrix[60, 1] = matrix[99, 2] = 1.0
    queries = rng.standard_normal((5, 182)).astype(np.float32)
    with torch.no_grad():
        exported = StatisticsStudentModule(taught, matrix)(torch.from_numpy(queries)).numpy()
    assert exported.shape == (5, 4 + 3)
    np.testing.assert_allclose(exported[:, :4], taught.predict(queries), atol=1e-5)
    derived = taught.teacher_tags(queries, matrix)
    np.testing.assert_allclose(exported[:, 4:], derived, atol=1e-5)
    estimate = np.clip(taught.teacher_features(queries)[:, 400:], 0, 1)
    np.testing.assert_allclose(derived[:, 0], estimate[:, :2].mean(axis=1), atol=1e-9)
