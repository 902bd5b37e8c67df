"""The fast model's song-statistics half, taught by the musicnn teachers (issue 10, part 3).

The fast model blends the paper's CNN with a model on each 30 s segment's 182 MFCC
statistics (`features.song_statistics`). Here that second model learns from the teachers
instead of from 800 labels alone:

1. **Student:** an MLP regression (one hidden layer of 512 ReLU units) from a segment's
   statistics to the teachers' 500 outputs averaged over the segment (MTT_musicnn and
   MSD_musicnn: penultimate 200 + 200, tag probabilities 50 + 50; `accurate.patch_features`),
   fitted on every 30 s segment of the unlabelled corpus (`corpus.py`, 14.5 h) and of the
   training clips.
2. **Heads:** the accurate model's heads (`accurate.fit_heads`: one logistic regression
   per 4Q tag, balanced classes) on the student's predicted outputs of the training clips.

At run time it costs what the old statistics MLP did (microseconds per segment): the
teachers are only needed to train it. Cross-validated as `mlp-student`, blended with the
CNN ensemble as `cnn-tf-student` (recipes.BLENDS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import FeatureParams, song_statistics
from . import accurate

SEGMENT_SECONDS = 30.0
HIDDEN_UNITS = 512
#: L2 penalty of the regression; with early stopping on a 10% split of its segments.
STUDENT_ALPHA = 1e-3


@dataclass
class StatisticsStudent:
    """statistics (n, 182) -> teacher features (n, 500) -> 4Q tag probabilities (n, n_tags)."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    mlp: object  # sklearn MLPRegressor on standardised statistics and targets
    y_mean: np.ndarray
    y_scale: np.ndarray
    heads: accurate.Heads

    def teacher_features(self, statistics: np.ndarray) -> np.ndarray:
        """The student's estimate of the teachers' 500 outputs, (n, 500) float64."""
        return self.mlp.predict((statistics - self.x_mean) / self.x_scale) * self.y_scale + self.y_mean

    def predict(self, statistics: np.ndarray) -> np.ndarray:
        """4Q tag probabilities, (n, n_tags) float64."""
        return self.heads.probabilities(self.teacher_features(statistics))

    def teacher_tags(self, statistics: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The teacher-derived tags (accurate.TEACHER_TAGS), (n, n_teacher_tags) float64:
        the student's estimate of the teachers' 100 tag probabilities (clipped to 0 ... 1)
        through `matrix` (100, n_teacher_tags) (accurate.teacher_tag_matrix), as the
        accurate model derives them from the teachers themselves."""
        probabilities = np.clip(self.teacher_features(statistics)[:, -matrix.shape[0] :], 0.0, 1.0)
        return probabilities @ matrix.astype(np.float64)


def segment_pairs(
    frames: np.ndarray, outputs: dict[str, np.ndarray], params: FeatureParams, bands: np.ndarray | None = None
):
    """(statistics (k, 182), teacher targets (k, 500)) of a file's 30 s segments: its MFCC
    frames (n_frames, 39) cut at the segment boundaries of its cached teacher outputs. With
    `bands` (n_segments, 320) (feature_cache.segment_band_statistics), each segment's band
    statistics follow its 182: statistics (k, 502); a segment without them is left out."""
    features = accurate.patch_features(outputs)
    frames_per_second = params.sample_rate / params.hop_length
    statistics, targets = [], []
    for segment in np.unique(outputs["segment"]):
        first = int(round(segment * SEGMENT_SECONDS * frames_per_second))
        part = frames[first : int(round((segment + 1) * SEGMENT_SECONDS * frames_per_second))]
        if len(part) < params.frames_per_patch:
            continue
        row = song_statistics(part)
        if bands is not None:
            if segment >= len(bands) or np.isnan(bands[segment]).any():
                continue
            row = np.concatenate([row, bands[segment]])
        statistics.append(row)
        targets.append(features[outputs["segment"] == segment].mean(axis=0))
    width = features.shape[1]
    inputs = 182 + (0 if bands is None else bands.shape[1])
    return np.array(statistics, dtype=np.float32).reshape(-1, inputs), np.array(targets).reshape(-1, width)


def fit_student(
    corpus_statistics: np.ndarray,
    corpus_targets: np.ndarray,
    clip_statistics: list[np.ndarray],
    clip_targets: list[np.ndarray],
    labels: np.ndarray,
    seed: int = 0,
) -> StatisticsStudent:
    """Fit the regression on the corpus' and the clips' segments, then the heads on the
    clips' predicted teacher features (a clip's mean over its segments); `labels` are the
    clips' (n_clips, n_tags)."""
    from sklearn.neural_network import MLPRegressor

    x = np.concatenate([corpus_statistics, *clip_statistics])
    y = np.concatenate([corpus_targets, *clip_targets])
    x_mean, x_scale = x.mean(axis=0), x.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    y_mean, y_scale = y.mean(axis=0), y.std(axis=0)
    y_scale = np.where(y_scale > 0, y_scale, 1.0)
    mlp = MLPRegressor(
        hidden_layer_sizes=(HIDDEN_UNITS,), alpha=STUDENT_ALPHA, max_iter=300, early_stopping=True, random_state=seed
    ).fit((x - x_mean) / x_scale, (y - y_mean) / y_scale)
    student = StatisticsStudent(x_mean, x_scale, mlp, y_mean, y_scale, heads=None)
    clip_features = np.stack([student.teacher_features(s).mean(axis=0) for s in clip_statistics])
    student.heads = accurate.fit_heads(clip_features, labels)
    return student


#: A clip is positive for a teacher-derived tag when the teachers' own score is in the top
#: AGREEMENT_TOP of the 800 clips (80 positives per tag), the per-tag threshold.
AGREEMENT_TOP = 0.10


def teacher_tag_report(songs, outputs: list[dict[str, np.ndarray]], student_scores: np.ndarray) -> dict[str, dict]:
    """How well the student's teacher-derived tags (out of fold, (clips, n_teacher_tags))
    follow the teachers: per tag, the AROC of the student's score against the teachers'
    own score binarised at its per-tag threshold (AGREEMENT_TOP), and, where a 4Q label
    of the same meaning exists (accurate.REAL_LABEL_MATCHES), the real-label AROC."""
    from sklearn.metrics import roc_auc_score

    matrix = accurate.teacher_tag_matrix(accurate.teacher_tag_names())
    teacher = np.stack([(accurate.patch_features(o)[:, -matrix.shape[0] :] @ matrix).mean(axis=0) for o in outputs])
    report = {}
    for column, tag in enumerate(accurate.TEACHER_TAGS):
        threshold = np.quantile(teacher[:, column], 1 - AGREEMENT_TOP)
        positive = teacher[:, column] > threshold
        row = {
            "teacher_threshold": float(threshold),
            "agreement_aroc": float(roc_auc_score(positive, student_scores[:, column])),
        }
        label = accurate.REAL_LABEL_MATCHES.get(tag)
        if label:
            truth = songs.labels[:, songs.tags.index(label)]
            if 0 < truth.sum() < len(truth):
                row.update(label=label, positives=int(truth.sum()))
                row["real_label_aroc"] = float(roc_auc_score(truth, student_scores[:, column]))
        report[tag] = row
    return report


#: Statistics students by name: whether each 30 s segment's band statistics
#: (frontends.MfccFrontEnd.patches_and_bands) follow its 182 MFCC statistics.
STUDENTS = {"mlp-student": False, "mlp-student-bands": True}


def clip_bands(paths: list[str], params: FeatureParams, cache: str | None, jobs: int) -> list[np.ndarray]:
    """Each file's per-segment band statistics (n_segments, 320), cached."""
    from .export import librosa_mel_basis
    from .feature_cache import segment_band_statistics

    return segment_band_statistics(paths, params, librosa_mel_basis(params), cache, jobs)


def corpus_pairs(
    params: FeatureParams,
    mel_basis: np.ndarray,
    frames_cache: str | None,
    teacher_cache,
    jobs: int,
    log=print,
    with_bands: bool = False,
):
    """(statistics, targets) of every segment of the unlabelled corpus (corpus.py's
    manifest), from cached MFCC frames (and, `with_bands`, band statistics) and teacher
    outputs, each computed where missing."""
    from ..errors import QbsdError
    from .corpus import DEFAULT_CACHE
    from .feature_cache import song_frames
    from .teacher import corpus_paths

    try:
        paths = corpus_paths(DEFAULT_CACHE)
    except OSError:
        raise QbsdError(
            f"no corpus manifest in {DEFAULT_CACHE}: run `python -m qbsd_cli.training.corpus fetch` first"
        ) from None
    outputs = accurate.teacher_outputs(paths, teacher_cache, log=log)
    frames = song_frames(paths, params, mel_basis, cache_dir=frames_cache, jobs=jobs)
    bands = clip_bands(paths, params, frames_cache, jobs) if with_bands else [None] * len(paths)
    pairs = [segment_pairs(f, o, params, b) for f, o, b in zip(frames, outputs, bands)]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
