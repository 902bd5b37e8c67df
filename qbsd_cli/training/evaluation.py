"""Artist-grouped cross-validation of the CNN recipes and the baselines.

Every method produces out-of-fold song vectors for all songs on the same 5
folds; each (method, fold) result is saved as soon as it is finished, so an
interrupted evaluation resumes where it stopped and never recomputes a fold.
Ensembles and blends train nothing of their own: they combine their members'
out-of-fold scores. The report pools the out-of-fold scores of all songs (and
also gives the mean of per-fold AROC/MAP, which runs higher on small folds).

Each fold's model scores every clip, its training clips too (fold<f>.all.npy), for query
by example as `similar` ranks (retrieval_metrics.py): each held-out clip queries the
training clips, all vectors from the model that did not see its fold. REFERENCE_RANKINGS
add rows that train nothing (MFCC statistics, the musicnn embeddings).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..features import FeatureParams
from . import metrics
from .band_student import METHODS as BAND_STUDENT_METHODS
from .datasets import LabelledSongs
from .recipes import (
    BLENDS,
    ENSEMBLES,
    RECIPES,
    STATISTICS_MODELS,
    coefficient_mean_std,
    fit_statistics_model,
)

BASELINES = ("prior", "logreg", *STATISTICS_MODELS, "gmm-sml")
#: Methods on the frozen musicnn teachers (accurate.py), from their cached outputs:
#: `teacher-probe` scores a clip's mean features (issue 10's ceiling); `musicnn-heads`
#: scores each patch and averages, as the shipped accurate model does; `mlp-student` is
#: the fast model's statistics part taught by the teachers (student.py), `cnn-band-student`
#: its patch part taught by them (band_student.py); `cnn-patient-student` the same taught
#: longer, with mixup and the heads' logits as further targets (band_student.PATIENT_SETTINGS);
#: `cnn-wide-student` with twice the filters (band_student.WIDE_SETTINGS); `cnn-view-student`
#: on augmented views that the teachers analysed too (band_student.VIEWS_SETTINGS, views.py),
#: `cnn-wide-view-student` both (band_student.WIDE_VIEWS_SETTINGS), `cnn-wide-corpus-view-student`
#: with views of the corpus files too (band_student.WIDE_CORPUS_VIEWS_SETTINGS),
#: `cnn-wide-patient-student` the same taught patiently (band_student.WIDE_PATIENT_SETTINGS).
#: `musicnn-finetuned` also trains the teachers' last layers on the labels (finetune.py),
#: `musicnn-midend-finetuned` the top of their mid-end too.
TEACHER_METHODS = (
    "teacher-probe",
    "musicnn-heads",
    "musicnn-finetuned",
    "musicnn-midend-finetuned",
    "mlp-student",
    "mlp-student-bands",
    *BAND_STUDENT_METHODS,
)
#: methods whose folds also keep their teacher-derived tags (student.teacher_tag_report)
DERIVING_METHODS = ("mlp-student", "mlp-student-bands", *BAND_STUDENT_METHODS)


def artist_folds(groups: list[str], n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number per song; no artist in two folds."""
    from sklearn.model_selection import GroupKFold

    fold_of = np.zeros(len(groups), dtype=int)
    splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(groups)), groups=groups)):
        fold_of[test] = fold
    return fold_of


def _baseline_scores(method: str, train_frames, train_labels, test_frames, seed: int) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    if method == "prior":
        return np.tile(train_labels.mean(axis=0), (len(test_frames), 1))
    if method in STATISTICS_MODELS:
        statistics, alpha = STATISTICS_MODELS[method]
        model = fit_statistics_model(np.stack([statistics(f) for f in train_frames]), train_labels, seed, alpha)
        return model.predict(np.stack([statistics(f) for f in test_frames]))
    if method == "logreg":
        from sklearn.linear_model import LogisticRegression

        train_statistics = np.stack([coefficient_mean_std(f) for f in train_frames])
        scaler = StandardScaler().fit(train_statistics)
        x_train = scaler.transform(train_statistics)
        x_test = scaler.transform(np.stack([coefficient_mean_std(f) for f in test_frames]))
        scores = np.tile(train_labels.mean(axis=0), (len(test_frames), 1)).astype(np.float64)
        trainable = np.flatnonzero((train_labels.sum(0) > 0) & (train_labels.sum(0) < len(train_labels)))
        for tag in trainable:
            model = LogisticRegression(C=0.1, max_iter=1000).fit(x_train, train_labels[:, tag])
            scores[:, tag] = model.predict_proba(x_test)[:, 1]
        return scores
    if method == "gmm-sml":
        return _gmm_sml_scores(train_frames, train_labels, test_frames, seed)
    raise ValueError(method)


def _gmm_sml_scores(train_frames, train_labels, test_frames, seed, components=8, frames_per_tag=20000, stride=4):
    """A GMM baseline in the spirit of SML (Turnbull et al. 2008): one diagonal GMM
    per tag over the MFCC frames of its songs, scored against a background GMM of
    all training frames; a song's tag score is its mean per-frame log-likelihood
    ratio. (SML estimates tag models by mixture hierarchies from per-song GMMs;
    this direct fit is a simplification.)"""
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    every = np.concatenate([f[::stride] for f in train_frames])
    mean, std = every.mean(0), every.std(0) + 1e-6

    def norm(x):
        return (x - mean) / std

    background = GaussianMixture(components, covariance_type="diag", random_state=seed, max_iter=50).fit(
        norm(every[rng.choice(len(every), min(len(every), 40000), replace=False)])
    )
    test_sets = [norm(f[::stride]) for f in test_frames]
    lengths = [len(t) for t in test_sets]
    stacked = np.concatenate(test_sets)
    base = background.score_samples(stacked)
    bounds = np.cumsum([0] + lengths)
    scores = np.zeros((len(test_frames), train_labels.shape[1]))
    for tag in range(train_labels.shape[1]):
        songs = np.flatnonzero(train_labels[:, tag])
        if len(songs) == 0:
            scores[:, tag] = -1e9
            continue
        frames = np.concatenate([train_frames[s][::stride] for s in songs])
        if len(frames) > frames_per_tag:
            frames = frames[rng.choice(len(frames), frames_per_tag, replace=False)]
        model = GaussianMixture(components, covariance_type="diag", random_state=seed, max_iter=50, reg_covar=1e-3).fit(
            norm(frames)
        )
        ratio = model.score_samples(stacked) - base
        scores[:, tag] = [ratio[bounds[i] : bounds[i + 1]].mean() for i in range(len(test_frames))]
    # squash to (0, 1) so that cosine and top-k behave like the other methods'
    return 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))


def all_clips_path(fold_path: str) -> str:
    """Where a fold's scores of every clip (its training clips too) are kept beside its
    out-of-fold scores `fold_path` (folds/<method>/fold<f>.npy -> fold<f>.all.npy)."""
    return fold_path[: -len(".npy")] + ".all.npy"


def _save_array(path: str, array: np.ndarray) -> None:
    """np.save to a temporary file, then rename: an interrupted run leaves no half file."""
    np.save(path + ".tmp.npy", np.asarray(array, dtype=np.float32))
    os.replace(path + ".tmp.npy", path)


def _fold_finished(path: str) -> bool:
    """A fold is done when its out-of-fold scores and its scores of every clip are saved
    (folds saved before query by example have only the first: they are run again)."""
    return os.path.exists(path) and os.path.exists(all_clips_path(path))


def _run_fold(job) -> tuple[str, int, str, dict]:
    method, fold, song_frames, labels, groups, fold_of, params, out_path, seed = job
    import torch

    torch.set_num_threads(1)
    started = time.time()
    train_index = np.flatnonzero(fold_of != fold)
    test_index = np.flatnonzero(fold_of == fold)
    train_frames = [song_frames[i] for i in train_index]
    info = {}
    # every clip is scored by the fold's model: the test clips' rows are the out-of-fold
    # scores, the training clips' rows what query by example searches (fold_vectors)
    if method in BASELINES:
        every = _baseline_scores(method, train_frames, labels[train_index], song_frames, seed)
    else:
        from .recipes import predict_songs, recipe_feature_params, train, with_overrides

        # the evaluation's seed shifts every recipe's own (seed variants stay distinct)
        recipe = with_overrides(RECIPES[method], seed=seed + RECIPES[method].seed)
        trained = train(train_frames, labels[train_index], [groups[i] for i in train_index], params, recipe)
        every = predict_songs(trained.network, song_frames, recipe_feature_params(params, recipe))
        info = {"epochs_run": trained.epochs_run, "best_epoch": trained.best_epoch}
    info["seconds"] = time.time() - started
    every = np.asarray(every, dtype=np.float32)
    _save_array(all_clips_path(out_path), every)
    _save_array(out_path, every[test_index])
    with open(out_path + ".json", "w") as handle:
        json.dump(info, handle)
    return method, fold, out_path, info


def _teacher_folds(
    songs: LabelledSongs,
    methods: list[str],
    fold_of: np.ndarray,
    results_dir: str,
    n_folds: int,
    song_frames: list[np.ndarray],
    params: FeatureParams,
    cache_dir: str | None = None,
    log=print,
    jobs: int = 2,
) -> None:
    """Out-of-fold scores of the teacher methods, fold by fold, saved like the others'
    (heads on 640 clips fit in seconds and the student in about ten, so this runs in the
    command's own process). The student of a fold learns from the corpus and that fold's
    training clips only."""
    from . import accurate, band_student, finetune, student
    from .export import librosa_mel_basis

    def finished(method: str, fold: int) -> bool:
        path = os.path.join(results_dir, "folds", method, f"fold{fold}.npy")
        extra = (
            [path[: -len(".npy")] + ".teacher_tags.npy", path[: -len(".npy")] + ".all.teacher_tags.npy"]
            if method in DERIVING_METHODS
            else []
        )
        return all(os.path.exists(p) for p in [path, all_clips_path(path), *extra])

    todo = [(m, f) for m in methods for f in range(n_folds) if not finished(m, f)]
    if not todo:
        return
    outputs = accurate.teacher_outputs(songs.paths, accurate.teacher_cache(cache_dir), log=log)
    patches = [accurate.patch_features(value) for value in outputs]
    clips = np.stack([features.mean(axis=0) for features in patches]).astype(np.float64)
    corpus, clip_pairs = {}, {}  # per student kind: with band statistics or without
    for with_bands in sorted({student.STUDENTS[method] for method, _ in todo if method in student.STUDENTS}):
        corpus[with_bands] = student.corpus_pairs(
            params,
            librosa_mel_basis(params),
            cache_dir,
            accurate.teacher_cache(cache_dir),
            jobs=1,
            log=log,
            with_bands=with_bands,
        )
        bands = student.clip_bands(songs.paths, params, cache_dir, 1) if with_bands else [None] * len(songs.paths)
        clip_pairs[with_bands] = [
            student.segment_pairs(f, o, params, b) for f, o, b in zip(song_frames, outputs, bands)
        ]
    if any(method in band_student.METHODS for method, _ in todo):
        wanted = [band_student.METHODS[method] for method, _ in todo if method in band_student.METHODS]
        bands_data = band_student.band_data(
            songs.paths,
            params,
            cache_dir,
            jobs,
            log=log,
            clip_views=max(settings.clip_views for settings in wanted),
            corpus_views=max(settings.corpus_views for settings in wanted),
        )
    tuning = [finetune.METHODS[method] for method, _ in todo if method in finetune.METHODS]
    if tuning:
        # with the mid-end's inputs if any method tunes it (the others ignore them)
        tuning_inputs = finetune.training_inputs(
            songs.paths,
            any(settings.midend for settings in tuning),
            accurate.teacher_cache(cache_dir),
            accurate.TEACHER_DIR,
            log=log,
        )
    matrix = accurate.teacher_tag_matrix(accurate.teacher_tag_names())

    def save_derived(method: str, fold: int, derived: np.ndarray) -> None:
        """The teacher-derived tags: of the fold's test clips (fold<f>.teacher_tags.npy) and
        of every clip (fold<f>.all.teacher_tags.npy), from `derived` of every clip."""
        derived_path = os.path.join(results_dir, "folds", method, f"fold{fold}.teacher_tags.npy")
        os.makedirs(os.path.dirname(derived_path), exist_ok=True)
        _save_array(derived_path[: -len(".teacher_tags.npy")] + ".all.teacher_tags.npy", derived)
        _save_array(derived_path, np.asarray(derived)[fold_of == fold])

    for method, fold in todo:
        started = time.time()
        state_path = None  # a band student's training state, while its fold trains
        train, test = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        # every clip is scored by the fold's model (its training clips for query by example)
        if method in band_student.METHODS:
            log(f"  {method} fold {fold}: training on the corpus and {len(train)} clips ...")
            curve_path = os.path.join(results_dir, "folds", method, f"fold{fold}.curve.json")
            settings = band_student.METHODS[method]
            record = _curve_recorder(songs, test, matrix, curve_path, log)
            # a fold trains for up to half an hour: its state after each epoch lets a killed
            # run resume there; removed once the fold's scores are saved
            state_path = os.path.join(results_dir, "folds", method, f"fold{fold}.state.pt")
            taught, windows = band_student.teach(
                bands_data,
                train,
                songs.labels[train],
                settings,
                log=log,
                on_checkpoint=record,
                cache_dir=cache_dir,
                state_path=state_path,
            )
            every, derived = band_student.song_scores(taught.heads, matrix, windows)
            record(settings.pretrain_epochs + settings.epochs, taught, windows, "corpus and clips")
            # every clip's window features, for trying heads without retraining the student
            np.savez(
                os.path.join(results_dir, "folds", method, f"fold{fold}.windows.npz"),
                features=np.concatenate(windows).astype(np.float32),
                counts=np.array([len(w) for w in windows]),
            )
            save_derived(method, fold, derived)
        elif method in student.STUDENTS:
            pairs = clip_pairs[student.STUDENTS[method]]
            taught = student.fit_student(
                *corpus[student.STUDENTS[method]],
                [pairs[i][0] for i in train],
                [pairs[i][1] for i in train],
                songs.labels[train],
            )
            every = np.stack([taught.predict(pair[0]).mean(axis=0) for pair in pairs])
            save_derived(method, fold, np.stack([taught.teacher_tags(pair[0], matrix).mean(axis=0) for pair in pairs]))
        else:
            heads = accurate.fit_heads(clips[train], songs.labels[train])
            if method == "teacher-probe":
                every = heads.probabilities(clips)
            elif method in finetune.METHODS:
                tuned = finetune.fine_tune(
                    tuning_inputs.subset(train), songs.labels[train], heads, finetune.METHODS[method], seed=fold
                )
                every = tuned.song_scores(tuning_inputs)
            else:
                every = accurate.song_scores(heads, patches)
        folder = os.path.join(results_dir, "folds", method)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"fold{fold}.npy")
        _save_array(all_clips_path(path), every)
        _save_array(path, np.asarray(every)[test])
        with open(path + ".json", "w") as handle:
            json.dump({"seconds": time.time() - started}, handle)
        if state_path and os.path.exists(state_path):
            os.remove(state_path)
        log(f"  {method} fold {fold}: {time.time() - started:.0f} s")


def _curve_recorder(songs: LabelledSongs, test: np.ndarray, matrix: np.ndarray, path: str, log=print):
    """A checkpoint callback for band_student.teach that appends the test fold's AROC, MAP and
    quadrant accuracy after an epoch to the JSON file `path` (accuracy against epochs, issue
    20: a schedule stops where this flattens). Mid-schedule points come from one run whose
    learning rate is still high there, so they understate what a shorter schedule reaches."""
    from . import band_student

    quadrants = [songs.tags.index(f"quadrant:q{i}") for i in range(1, 5)]

    def record(epoch: int, student, windows: list[np.ndarray], stage: str) -> None:
        scores, _ = band_student.song_scores(student.heads, matrix, [windows[i] for i in test])
        labels = songs.labels[test]
        point = {
            "epoch": epoch,
            "stage": stage,
            **{k: metrics.retrieval_scores(labels, scores)[k] for k in ("aroc", "map")},
            "quadrant_accuracy": metrics.quadrant_scores(labels, scores, quadrants)["accuracy"],
        }
        curve = []
        if os.path.exists(path):
            with open(path) as handle:
                curve = json.load(handle)
        curve = [p for p in curve if (p["epoch"], p.get("stage")) != (epoch, stage)] + [point]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            json.dump(sorted(curve, key=lambda p: p["epoch"]), handle)
        log(
            f"    {stage}, epoch {epoch}: test fold AROC {point['aroc']:.3f}, MAP {point['map']:.3f}, "
            f"quadrant {point['quadrant_accuracy']:.3f}"
        )

    return record


def trained_members(method: str) -> list[str]:
    """The recipes and baselines whose folds `method` is made of (itself, for a single one)."""
    if method in BLENDS:
        return [*trained_members(BLENDS[method].patch_model), BLENDS[method].statistics_model]
    return list(ENSEMBLES.get(method, [method]))


def cross_validate(
    songs: LabelledSongs,
    song_frames: list[np.ndarray],
    params: FeatureParams,
    methods: list[str],
    results_dir: str,
    n_folds: int = 5,
    jobs: int = 2,
    seed: int = 0,
    log=print,
    cache_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """Out-of-fold scores (n_songs, n_tags) per method; finished folds are reused.
    `cache_dir`: the command's --cache, under which teacher outputs are cached too."""
    fold_of = artist_folds(songs.groups, n_folds, seed)
    os.makedirs(results_dir, exist_ok=True)
    np.save(os.path.join(results_dir, "folds.npy"), fold_of)
    # ensembles and blends need their members' folds; they add no training of their own
    trained = list(dict.fromkeys(member for method in methods for member in trained_members(method)))
    teacher_methods = [method for method in trained if method in TEACHER_METHODS]
    if teacher_methods:
        _teacher_folds(songs, teacher_methods, fold_of, results_dir, n_folds, song_frames, params, cache_dir, log, jobs)
    trained = [method for method in trained if method not in TEACHER_METHODS]
    pending = []
    for method in trained:
        os.makedirs(os.path.join(results_dir, "folds", method), exist_ok=True)
        for fold in range(n_folds):
            path = os.path.join(results_dir, "folds", method, f"fold{fold}.npy")
            if not _fold_finished(path):
                pending.append((method, fold, song_frames, songs.labels, songs.groups, fold_of, params, path, seed))
    if pending:
        log(f"{len(pending)} folds to run ({len(trained) * n_folds - len(pending)} already done)")
        with ProcessPoolExecutor(jobs) as pool:
            for method, fold, _, info in pool.map(_run_fold, pending):
                log(
                    f"  {method} fold {fold}: {info['seconds']:.0f} s "
                    + (f"(best epoch {info['best_epoch']}/{info['epochs_run']})" if "best_epoch" in info else "")
                )

    def out_of_fold(method: str) -> np.ndarray:
        scores = np.zeros(songs.labels.shape, dtype=np.float32)
        for fold in range(n_folds):
            scores[fold_of == fold] = np.load(os.path.join(results_dir, "folds", method, f"fold{fold}.npy"))
        return scores

    def combined(method: str) -> np.ndarray:
        if method in BLENDS:
            blend = BLENDS[method]
            weight = blend.statistics_weight
            return (1 - weight) * combined(blend.patch_model) + weight * out_of_fold(blend.statistics_model)
        if method in ENSEMBLES:
            return np.mean([out_of_fold(m) for m in ENSEMBLES[method]], axis=0)
        return out_of_fold(method)

    return {method: combined(method) for method in methods}


#: The statistics weights the nested selection tries.
WEIGHT_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def _saved_out_of_fold(results_dir: str, method: str, fold_of: np.ndarray, n_tags: int) -> np.ndarray:
    """A trained method's out-of-fold scores (songs, n_tags) from its saved fold files; an
    ensemble's are its members' mean."""
    if method in ENSEMBLES:
        return np.mean([_saved_out_of_fold(results_dir, m, fold_of, n_tags) for m in ENSEMBLES[method]], axis=0)
    scores = np.zeros((len(fold_of), n_tags), dtype=np.float32)
    for fold in np.unique(fold_of):
        scores[fold_of == fold] = np.load(os.path.join(results_dir, "folds", method, f"fold{fold}.npy"))
    return scores


def nested_weight(songs: LabelledSongs, results_dir: str, fold_of: np.ndarray, blend_name: str) -> dict:
    """How a blend's statistics weight is chosen, and what choosing it costs: for each fold,
    the w of WEIGHT_GRID with the best pooled MAP on the other folds' out-of-fold scores of
    the two halves; then those per-fold choices applied each to its own fold (the nested
    estimate, free of the selection's optimism). The shipped weight is their median."""
    blend = BLENDS[blend_name]
    n_tags = songs.labels.shape[1]
    patch = _saved_out_of_fold(results_dir, blend.patch_model, fold_of, n_tags)
    statistics = _saved_out_of_fold(results_dir, blend.statistics_model, fold_of, n_tags)
    choices, nested = [], np.zeros_like(patch)
    for fold in np.unique(fold_of):
        others = fold_of != fold
        maps = [
            metrics.retrieval_scores(songs.labels[others], ((1 - w) * patch + w * statistics)[others])["map"]
            for w in WEIGHT_GRID
        ]
        best = float(WEIGHT_GRID[int(np.argmax(maps))])
        choices.append(best)
        nested[~others] = (1 - best) * patch[~others] + best * statistics[~others]
    retrieval = metrics.retrieval_scores(songs.labels, nested)
    quadrants = [songs.tags.index(f"quadrant:q{i}") for i in range(1, 5)]
    accuracy = float((nested[:, quadrants].argmax(axis=1) == songs.labels[:, quadrants].argmax(axis=1)).mean())
    return {
        "per_fold_weights": choices,
        "median_weight": float(np.median(choices)),
        "shipped_weight": blend.statistics_weight,
        "nested_aroc": retrieval["aroc"],
        "nested_map": retrieval["map"],
        "nested_quadrant_accuracy": accuracy,
    }


#: Query-by-example rows that train nothing: a fixed song vector per clip, ranked by cosine
#: (retrieval_metrics). `mfcc-stats-cosine`: the 182 MFCC statistics of features.song_statistics,
#: standardised by the training folds' mean and deviation; `musicnn-embedding-cosine`: the
#: MSD_musicnn penultimate layer (200) averaged over the song's 3 s patches, as AudioMuse-AI
#: ranks songs; `musicnn-mtt-embedding-cosine`: the same of MTT_musicnn.
REFERENCE_RANKINGS = ("mfcc-stats-cosine", "musicnn-embedding-cosine", "musicnn-mtt-embedding-cosine")
#: Methods whose shipped song vector also holds the 72 teacher-derived tags (from the frozen
#: teachers: the accurate model's); the students' are out of fold (DERIVING_METHODS).
FROZEN_TEACHER_TAG_METHODS = ("musicnn-heads", "musicnn-finetuned", "musicnn-midend-finetuned")


def fold_vectors(results_dir: str, method: str, fold: int, derived: bool = False) -> np.ndarray:
    """Every clip's vector (n_clips, n_tags) from the model of `method` trained without
    `fold` (saved by cross_validate as fold<f>.all.npy); an ensemble's is its members'
    mean, a blend's its halves' weighted sum. `derived`: the teacher-derived tags instead
    (fold<f>.all.teacher_tags.npy of the students)."""
    if method in BLENDS:
        blend = BLENDS[method]
        weight = blend.statistics_weight
        return (1 - weight) * fold_vectors(results_dir, blend.patch_model, fold, derived) + weight * fold_vectors(
            results_dir, blend.statistics_model, fold, derived
        )
    if method in ENSEMBLES:
        return np.mean([fold_vectors(results_dir, m, fold, derived) for m in ENSEMBLES[method]], axis=0)
    name = f"fold{fold}.all.teacher_tags.npy" if derived else f"fold{fold}.all.npy"
    return np.load(os.path.join(results_dir, "folds", method, name)).astype(np.float64)


def query_by_example_rows(
    songs: LabelledSongs,
    methods: list[str],
    rankings: list[str],
    results_dir: str,
    fold_of: np.ndarray,
    song_frames: list[np.ndarray],
    cache_dir: str | None = None,
    log=print,
) -> dict[str, dict]:
    """Query by example (retrieval_metrics.query_by_example, k = 10) per method on its 4Q
    tag vector; for the methods whose shipped vector also holds the 72 teacher-derived tags
    a second row `<method> +teacher tags` on that whole vector (261, what `similar` ranks);
    then the reference rankings asked for, and `random (expected)`, the mean share over all
    training clips (what a random list of ten gives on average)."""
    from . import retrieval_metrics as qbe

    quadrants, genres, moods = qbe.song_label_sets(songs.tags, songs.labels)
    folds = [int(f) for f in np.unique(fold_of)]
    outputs = None

    def teacher_outputs():
        nonlocal outputs
        if outputs is None:
            from . import accurate

            outputs = accurate.teacher_outputs(songs.paths, accurate.teacher_cache(cache_dir), log=log)
        return outputs

    rows = {}
    for method in methods:
        vectors = {f: fold_vectors(results_dir, method, f) for f in folds}
        rows[method] = qbe.query_by_example(vectors, fold_of, quadrants, genres, moods)
        members = trained_members(method)
        if all(m in DERIVING_METHODS for m in members):
            derived = {f: fold_vectors(results_dir, method, f, derived=True) for f in folds}
        elif method in FROZEN_TEACHER_TAG_METHODS:
            from . import accurate

            matrix = accurate.teacher_tag_matrix(accurate.teacher_tag_names())
            frozen = np.stack(
                [
                    (accurate.patch_features(value)[:, -matrix.shape[0] :] @ matrix).mean(axis=0)
                    for value in teacher_outputs()
                ]
            )
            derived = {f: frozen for f in folds}
        else:
            continue
        whole = {f: np.concatenate([vectors[f], derived[f]], axis=1) for f in folds}
        rows[f"{method} +teacher tags"] = qbe.query_by_example(whole, fold_of, quadrants, genres, moods)
    for name in rankings:
        if name == "mfcc-stats-cosine":
            from ..features import song_statistics

            statistics = np.stack([song_statistics(frames) for frames in song_frames]).astype(np.float64)
            vectors = qbe.standardised_per_fold(statistics, fold_of)
        else:
            teacher = "MSD_musicnn" if name == "musicnn-embedding-cosine" else "MTT_musicnn"
            vectors = np.stack([value[f"{teacher}/penultimate"].mean(axis=0) for value in teacher_outputs()])
        rows[name] = qbe.query_by_example(vectors, fold_of, quadrants, genres, moods)
    rows["random (expected)"] = qbe.expected_at_random(fold_of, quadrants, genres, moods)
    return rows


def qbe_table(rows: dict[str, dict]) -> str:
    from .retrieval_metrics import QBE_KEYS

    lines = [
        "| query by example: 10 nearest training-fold clips by cosine | quadrant P@10 | genre P@10 | mood Jaccard@10 |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[key]:.3f}" for key in QBE_KEYS) + " |")
    return "\n".join(lines)


def summarise(songs: LabelledSongs, results: dict[str, np.ndarray], fold_of: np.ndarray) -> dict:
    """All measures for every method, pooled over folds (plus per-fold retrieval means)."""
    quadrants = [songs.tags.index(f"quadrant:q{i}") for i in range(1, 5)]
    table = {}
    for method, scores in results.items():
        row = {}
        row.update({f"annotation_{k}": v for k, v in metrics.annotation_scores(songs.labels, scores).items()})
        row.update({f"retrieval_{k}": v for k, v in metrics.retrieval_scores(songs.labels, scores).items()})
        per_fold = [
            metrics.retrieval_scores(songs.labels[fold_of == f], scores[fold_of == f]) for f in np.unique(fold_of)
        ]
        row["fold_mean_aroc"] = float(np.mean([p["aroc"] for p in per_fold]))
        row["fold_mean_map"] = float(np.mean([p["map"] for p in per_fold]))
        hits, _ = metrics.hit_at_k(songs.labels, scores)
        row.update({f"hit@{k}": v for k, v in hits.items()})
        row.update({f"quadrant_{k}": v for k, v in metrics.quadrant_scores(songs.labels, scores, quadrants).items()})
        row["score_spread"] = float(scores.std(axis=0).mean())
        table[method] = row
    return table


def markdown_table(table: dict) -> str:
    columns = [
        ("P", "annotation_precision"),
        ("R", "annotation_recall"),
        ("F", "annotation_f"),
        ("never predicted", "annotation_never_predicted"),
        ("AROC", "retrieval_aroc"),
        ("MAP", "retrieval_map"),
        ("AROC per-fold", "fold_mean_aroc"),
        ("MAP per-fold", "fold_mean_map"),
        ("Hit@1", "hit@1"),
        ("Hit@5", "hit@5"),
        ("Hit@10", "hit@10"),
        ("Hit@20", "hit@20"),
        ("Quadrant acc", "quadrant_accuracy"),
        ("Quadrant F1", "quadrant_macro_f1"),
    ]
    lines = ["| method | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for method, row in table.items():
        cells = [str(row[key]) if isinstance(row[key], int) else f"{row[key]:.3f}" for _, key in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_with_baseline(songs: LabelledSongs, results: dict[str, np.ndarray], baseline: str = "mlp") -> dict:
    """Paired bootstrap (metrics.paired_bootstrap) of every ensemble and blend against
    `baseline`, and of every blend against each of its halves alone; only these, the
    shipped kinds, as each costs about 3 min on 2 cores (200 resamples of sklearn's
    per-tag AROC and AP)."""
    pairs = [(method, baseline) for method in results if method in ENSEMBLES or method in BLENDS]
    pairs += [
        (method, half)
        for method in results
        if method in BLENDS
        for half in (BLENDS[method].patch_model, BLENDS[method].statistics_model)
        if half != baseline
    ]
    # a new blend against the one it would replace
    blends = [method for method in results if method in BLENDS]
    pairs += [(newer, older) for number, newer in enumerate(blends) for older in blends[:number]]
    return {
        f"{method} vs {other}": metrics.paired_bootstrap(songs.labels, results[method], results[other])
        for method, other in pairs
        if other in results
    }


def comparison_table(comparisons: dict) -> str:
    lines = [
        "| pooled, paired bootstrap over songs | AROC difference (95% interval) | ahead in | "
        "MAP difference (95% interval) | ahead in |",
        "|---|---|---|---|---|",
    ]
    for name, c in comparisons.items():
        lines.append(
            f"| {name} | {c['aroc_difference']:+.3f} ({c['aroc_low']:+.3f} to {c['aroc_high']:+.3f}) "
            f"| {c['aroc_ahead']:.0%} of {c['rounds']} | {c['map_difference']:+.3f} "
            f"({c['map_low']:+.3f} to {c['map_high']:+.3f}) | {c['map_ahead']:.0%} |"
        )
    return "\n".join(lines)


# matplotlib cycles 10 colours; later methods get another line style so no two look alike
_STYLES = ("-", "--", ":")


def plots(songs: LabelledSongs, results: dict[str, np.ndarray], results_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # with many variants, the headline rows only: a plot of 30 lines says nothing
    headline = {m: s for m, s in results.items() if m in BASELINES or m == "paper" or m in ENSEMBLES or m in BLENDS}
    if len(results) > 10 and headline:
        results = headline
    written = []
    figure, axis = plt.subplots(figsize=(7, 4.5))
    ks = np.arange(1, 51)
    for number, (method, scores) in enumerate(results.items()):
        _, rank = metrics.hit_at_k(songs.labels, scores)
        axis.plot(ks, [(rank <= k).mean() for k in ks], label=method, linestyle=_STYLES[number // 10 % len(_STYLES)])
    axis.set_xlabel("k")
    axis.set_ylabel("Hit@k")
    axis.set_title("Query by example (800 clips, out-of-fold)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    path = os.path.join(results_dir, "hit_at_k.png")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    written.append(path)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for number, (method, scores) in enumerate(results.items()):
        _, aroc, _ = metrics.per_tag_retrieval(songs.labels, scores)
        axis.plot(np.sort(aroc)[::-1], label=method, linestyle=_STYLES[number // 10 % len(_STYLES)])
    axis.axhline(0.5, color="grey", lw=0.8)
    axis.set_xlabel("tag (sorted)")
    axis.set_ylabel("AROC")
    axis.set_title("Per-tag AROC, tags with >= 5 positives")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    path = os.path.join(results_dir, "per_tag_aroc.png")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    written.append(path)
    plt.close(figure)
    return written


def run_evaluation(
    songs: LabelledSongs,
    params: FeatureParams,
    mel_basis: np.ndarray,
    methods: list[str],
    results_dir: str,
    cache_dir: str | None = None,
    jobs: int = 2,
    seed: int = 0,
    log=print,
) -> dict:
    """Cross-validate `methods`, then write results.md, results.json and the PNG plots."""
    from .feature_cache import song_frames

    rankings = [method for method in methods if method in REFERENCE_RANKINGS]
    methods = [method for method in methods if method not in REFERENCE_RANKINGS]
    frames = song_frames(songs.paths, params, mel_basis, cache_dir=cache_dir, jobs=jobs)
    results = cross_validate(
        songs, frames, params, methods, results_dir, jobs=jobs, seed=seed, log=log, cache_dir=cache_dir
    )
    fold_of = np.load(os.path.join(results_dir, "folds.npy"))
    table = summarise(songs, results, fold_of)
    qbe_rows = query_by_example_rows(songs, methods, rankings, results_dir, fold_of, frames, cache_dir, log)
    for method, row in qbe_rows.items():
        if method in table:
            table[method].update(row)
    comparisons = compare_with_baseline(songs, results)
    nested = {method: nested_weight(songs, results_dir, fold_of, method) for method in methods if method in BLENDS}
    with open(os.path.join(results_dir, "results.json"), "w") as handle:
        json.dump(
            {
                "data": songs.description,
                "songs": len(songs.paths),
                "tags": len(songs.tags),
                "folds": int(fold_of.max() + 1),
                "grouped_by": "artist",
                "seed": seed,
                "methods": table,
                "query_by_example": {
                    "how": "each clip of a test fold queries the clips of the training folds by cosine of song "
                    "vectors, all from the model trained without the test fold; of the 10 nearest, the share "
                    "in the query's quadrant, the share sharing at least one genre, the mean Jaccard of mood "
                    "sets (genres and moods of the vocabulary); ties by clip order",
                    "rows": qbe_rows,
                },
                "recipes": {m: RECIPES[m].describe() for m in methods if m in RECIPES},
                "ensembles": {m: ENSEMBLES[m] for m in methods if m in ENSEMBLES},
                "blends": {
                    m: {
                        "patch_model": BLENDS[m].patch_model,
                        "statistics_model": BLENDS[m].statistics_model,
                        "statistics_weight": BLENDS[m].statistics_weight,
                    }
                    for m in methods
                    if m in BLENDS
                },
                "comparisons": comparisons,
                "nested_weights": nested,
            },
            handle,
            indent=2,
        )
    teacher_tags = None
    if "musicnn-heads" in methods:
        from . import accurate

        outputs = accurate.teacher_outputs(songs.paths, accurate.teacher_cache(cache_dir), log=log)
        teacher_tags = accurate.real_label_aroc(songs, outputs)
        with open(os.path.join(results_dir, "teacher_tags.json"), "w") as handle:
            json.dump(teacher_tags, handle, indent=2)
    student_tags = {}  # per student among the methods: its teacher-derived tags
    from . import student as students

    for name in DERIVING_METHODS:
        if not any(name in trained_members(method) for method in methods):
            continue
        from . import accurate

        derived = np.zeros((len(songs.paths), len(accurate.TEACHER_TAGS)), dtype=np.float32)
        for fold in range(int(fold_of.max()) + 1):
            derived[fold_of == fold] = np.load(os.path.join(results_dir, "folds", name, f"fold{fold}.teacher_tags.npy"))
        outputs = accurate.teacher_outputs(songs.paths, accurate.teacher_cache(cache_dir), log=log)
        student_tags[name] = students.teacher_tag_report(songs, outputs, derived)
        with open(os.path.join(results_dir, f"teacher_tags-{name}.json"), "w") as handle:
            json.dump(student_tags[name], handle, indent=2)
    with open(os.path.join(results_dir, "results.md"), "w") as handle:
        handle.write(markdown_table(table) + "\n")
        handle.write("\n" + qbe_table(qbe_rows) + "\n")
        if comparisons:
            handle.write("\n" + comparison_table(comparisons) + "\n")
        if nested:
            handle.write(
                "\n| blend | statistics weight chosen per fold (by MAP on the other folds) | median "
                "| shipped | nested AROC | nested MAP | nested quadrant acc |\n|---|---|---|---|---|---|---|\n"
            )
            for method, row in nested.items():
                chosen = ", ".join(f"{w:g}" for w in row["per_fold_weights"])
                handle.write(
                    f"| {method} | {chosen} | {row['median_weight']:g} | {row['shipped_weight']:g} | "
                    f"{row['nested_aroc']:.3f} | {row['nested_map']:.3f} | {row['nested_quadrant_accuracy']:.3f} |\n"
                )
        if teacher_tags:
            handle.write("\n| teacher-derived tag (accurate model) | 4Q label | positives | AROC |\n")
            handle.write("|---|---|---|---|\n")
            for tag, row in teacher_tags.items():
                handle.write(f"| {tag} | {row['label']} | {row['positives']} | {row['aroc']:.3f} |\n")
        for name, report in student_tags.items():
            handle.write(
                f"\n| teacher-derived tag ({name}, out of fold) | agreement AROC with the teacher "
                "| 4Q label | real-label AROC |\n|---|---|---|---|\n"
            )
            for tag, row in report.items():
                real = f"{row['real_label_aroc']:.3f}" if "real_label_aroc" in row else ""
                handle.write(f"| {tag} | {row['agreement_aroc']:.3f} | {row.get('label', '')} | {real} |\n")
    plots(songs, results, results_dir)
    return table
