"""`qbsd train` and `qbsd evaluate`: the training-side commands (need the `train` extra)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import QbsdError, UsageError
from ..features import FeatureParams
from .datasets import LabelledSongs, load_cal500, load_moods4q, load_tag_csv
from .export import librosa_mel_basis


def load_songs(data: Path, layout: str) -> LabelledSongs:
    if layout == "moods4q":
        return load_moods4q(str(data))
    if layout == "cal500":
        return load_cal500(str(data))
    if layout == "csv":
        return load_tag_csv(str(data))
    raise UsageError(f"unknown layout {layout!r}: use moods4q, cal500 or csv")


def _log(text) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def _train_member(job):
    import torch

    from .recipes import RECIPES, train, with_overrides

    name, epochs, frames, labels, groups, params, threads = job
    torch.set_num_threads(threads)
    if epochs is not None:  # a fixed length: no inner validation split, every song trains
        recipe = with_overrides(RECIPES[name], epochs=epochs, patience=0)
    else:
        recipe = RECIPES[name]
    _log(f"training {name}: {recipe.describe()}")
    trained = train(
        frames, labels, groups, params, recipe, log=lambda record: _log(json.dumps({"recipe": name, **record}))
    )
    if recipe.patience:
        return trained.network, (
            f"{name}: best epoch {trained.best_epoch} of {trained.epochs_run} "
            f"(early stopping on an artist-grouped {recipe.validation_fraction:.0%} split)"
        )
    return trained.network, f"{name}: {trained.epochs_run} epochs on every song"


def cv_median_best_epoch(results: Path, recipe_name: str) -> int:
    """The median early-stopping epoch of `recipe_name` over the folds of a `qbsd evaluate` run."""
    import statistics

    folder = Path(results) / "folds" / recipe_name
    epochs = [json.loads(path.read_text())["best_epoch"] for path in sorted(folder.glob("fold*.npy.json"))]
    if not epochs:
        raise QbsdError(f"no cross-validation folds of {recipe_name} in {folder}: run `qbsd evaluate` first")
    return int(round(statistics.median(epochs)))


def default_output(recipe_name: str) -> Path:
    """Where `qbsd train` writes a model unless told: models/qbsd-accurate.onnx for the
    accurate model's recipes, else models/qbsd.onnx."""
    from . import accurate

    if recipe_name in (accurate.RECIPE, *accurate.FINETUNING_RECIPES):
        return Path("models/qbsd-accurate.onnx")
    return Path("models/qbsd.onnx")


@dataclass(frozen=True)
class TrainingRequest:
    """What `qbsd train` is asked to do: train `recipe` (a recipe, ensemble or blend) on
    every song of `data` (read as `layout`) and write the ONNX model to `output` (None:
    `default_output(recipe)`).

    Epochs: by default each recipe early-stops on an artist-grouped inner split; `epochs`
    fixes the length, and `epochs_from_cv` takes each recipe's median best epoch over the
    cross-validation folds in that results folder; both train on every song. `limit`: only
    the first songs (0: all). `int8_convolutions`: the float model is trained into a
    temporary folder and `output` gets its copy with int8 convolutions (quantise.py),
    calibrated on the corpus."""

    data: Path
    recipe: str
    layout: str = "moods4q"
    output: Path | None = None
    epochs: int | None = None
    limit: int = 0
    cache: Path | None = None
    jobs: int = 1
    epochs_from_cv: Path | None = None
    int8_convolutions: bool = False


def band_blends() -> list[str]:
    """The blends whose patch half is a band student (band_student.METHODS): the fast
    model's recipes."""
    from . import band_student
    from .recipes import BLENDS

    return [name for name, blend in BLENDS.items() if blend.patch_model in band_student.METHODS]


def train_and_export(request: TrainingRequest) -> str:
    """Train and write the model `request` asks for; returns its id."""
    output = request.output or default_output(request.recipe)
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder: give the model's file name")
    if not request.int8_convolutions:
        return _train_float(request, output)
    from .corpus import DEFAULT_CACHE
    from .quantise import CalibrationSettings, corpus_calibration_paths, quantise_with_corpus

    if request.recipe not in band_blends():
        # measured only there: the accurate model's convolutions ran slower in int8 (models/README.md)
        raise UsageError(
            f"--int8-convolutions is for the band-student blends (the fast model's recipes: "
            f"{', '.join(band_blends())}), not {request.recipe}"
        )
    corpus_calibration_paths(DEFAULT_CACHE, CalibrationSettings())  # no corpus: say so before training
    # beside the output, not in a temporary folder: a failed quantisation must not lose the training
    float_path = output.with_name(f"{output.stem}.float.onnx")
    _train_float(request, float_path)
    _log("int8 convolutions, calibrated on the corpus ...")
    try:
        model_id = quantise_with_corpus(float_path, output, DEFAULT_CACHE, log=_log)
    except BaseException:
        _log(
            f"the float model is kept in {float_path}: `python -m qbsd_cli.training.quantise {float_path} "
            f"{output}` quantises it"
        )
        raise
    float_path.unlink()
    _log(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), model id {model_id} (the float model removed)")
    return model_id


def _train_float(request: TrainingRequest, output: Path) -> str:
    """The float model that `request` asks for, written to `output`; returns its id."""
    from . import accurate
    from .export import export_onnx
    from .feature_cache import song_frames
    from .network import EnsembleCNN, HybridTagger
    from .recipes import (
        BLENDS,
        ENSEMBLES,
        RECIPES,
        recipe_feature_params,
    )

    data, layout, recipe_name, limit, cache, jobs = (
        request.data,
        request.layout,
        request.recipe,
        request.limit,
        request.cache,
        request.jobs,
    )
    epochs, epochs_from_cv = request.epochs, request.epochs_from_cv
    if recipe_name in (accurate.RECIPE, *accurate.FINETUNING_RECIPES):  # the accurate model: heads on the teachers
        if epochs_from_cv or (epochs is not None and recipe_name == accurate.RECIPE):
            raise UsageError(
                f"{recipe_name} takes no --epochs-from-cv"
                + (" and no --epochs (its heads are logistic regressions)" if recipe_name == accurate.RECIPE else "")
                + f"; --epochs sets the fine-tuning epochs of {' and '.join(accurate.FINETUNING_RECIPES)}"
            )
        songs = load_songs(data, layout)
        if limit:
            songs = songs.subset(range(min(limit, len(songs.paths))))
        _log(
            f"{len(songs.paths)} songs, {len(songs.tags)} tags; "
            f"teacher outputs (cached in {accurate.teacher_cache(cache)}) ..."
        )
        model_id = accurate.train_and_export(
            songs,
            output,
            cache_dir=accurate.teacher_cache(cache),
            log=_log,
            recipe=recipe_name,
            epochs=epochs,
        )
        _log(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), model id {model_id}")
        return model_id
    blend = BLENDS.get(recipe_name)
    if blend and recipe_name in band_blends():
        if epochs_from_cv:
            raise UsageError(
                f"{recipe_name} has no early-stopped members: its band student trains for a fixed number of "
                "epochs (--epochs changes it); leave out --epochs-from-cv"
            )
        return _train_band_blend(request, blend, output)
    patch_model = blend.patch_model if blend else recipe_name
    members = ENSEMBLES.get(patch_model, [patch_model])
    unknown = [name for name in members if name not in RECIPES]
    if unknown:
        raise UsageError(
            f"unknown recipe {recipe_name!r}; recipes: {', '.join(RECIPES)}; "
            f"ensembles and blends: {', '.join([*ENSEMBLES, *BLENDS])}; "
            f"the accurate model: {', '.join(accurate.FINETUNING_RECIPES)} or {accurate.RECIPE}"
        )
    patch_lengths = {RECIPES[name].long_frames_per_patch for name in members}
    if len(patch_lengths) > 1:  # one graph, one way of cutting patches
        raise UsageError(f"ensemble {recipe_name} mixes patch lengths {sorted(patch_lengths)}")
    songs = load_songs(data, layout)
    if limit:
        songs = songs.subset(range(min(limit, len(songs.paths))))
    params = FeatureParams()
    mel_basis = librosa_mel_basis(params)
    _log(f"{len(songs.paths)} songs, {len(songs.tags)} tags; computing features ...")
    frames = song_frames(songs.paths, params, mel_basis, cache_dir=str(cache) if cache else None, jobs=jobs)
    parallel = len(members) > 1 and jobs > 1
    threads = 1 if parallel else max(jobs, 1)
    member_epochs = {name: epochs for name in members}
    if epochs_from_cv:
        member_epochs = {name: cv_median_best_epoch(epochs_from_cv, name) for name in members}
        _log("epochs from cross-validation: " + ", ".join(f"{k} {v}" for k, v in member_epochs.items()))
    jobs_list = [(name, member_epochs[name], frames, songs.labels, songs.groups, params, threads) for name in members]
    if parallel:
        # one member per process, one thread each: small convolutions scale better so
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(members))) as pool:
            outcomes = list(pool.map(_train_member, jobs_list))
    else:
        outcomes = [_train_member(job) for job in jobs_list]
    networks = [network for network, _ in outcomes]
    notes = [note for _, note in outcomes]
    recipe = RECIPES[members[0]]
    if len(networks) == 1:
        network, description, faithful = networks[0], recipe.describe(), recipe.paper_faithful
    else:
        network = EnsembleCNN(networks)
        description = "mean of " + "; ".join(f"{n} ({RECIPES[n].describe()})" for n in members)
        faithful = False
    tags = list(songs.tags)
    if blend:
        statistics_module, statistics_description, note, statistics_only = _statistics_half(
            blend.statistics_model, songs, frames, params, mel_basis, cache, jobs
        )
        network = HybridTagger(network, statistics_module, blend.statistics_weight, len(statistics_only))
        tags += statistics_only
        description = (
            f"{1 - blend.statistics_weight:g} x [{description}] + {blend.statistics_weight:g} x "
            f"{statistics_description}"
        )
        faithful = False
        notes.append(note)
    output.parent.mkdir(parents=True, exist_ok=True)
    model_id = export_onnx(
        network,
        str(output),
        tags,
        recipe_feature_params(params, recipe),
        mel_basis,
        recipe_name,
        description,
        f"{songs.description}; trained on all {len(songs.paths)} songs; " + ", ".join(notes),
        faithful,
    )
    _log(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), model id {model_id}")
    return model_id


def _train_band_blend(request: TrainingRequest, blend, output: Path) -> str:
    """The fast model with the band student as its patch half (band_student.py): band windows
    in, every tag (4Q and teacher-derived) from both halves, mixed by the blend's weight;
    `request.epochs` replaces the student's default length."""
    from dataclasses import replace

    import torch

    from . import accurate, band_student
    from .export import export_onnx
    from .feature_cache import song_frames
    from .network import BandStudentTagger, HybridTagger

    recipe_name, limit, cache, jobs, epochs = request.recipe, request.limit, request.cache, request.jobs, request.epochs
    songs = load_songs(request.data, request.layout)
    if limit:
        songs = songs.subset(range(min(limit, len(songs.paths))))
    params = FeatureParams()
    mel_basis = librosa_mel_basis(params)
    cache_dir = str(cache) if cache else None
    _log(f"{len(songs.paths)} songs, {len(songs.tags)} tags; computing features ...")
    frames = song_frames(songs.paths, params, mel_basis, cache_dir=cache_dir, jobs=jobs)
    statistics_module, statistics_description, statistics_note, statistics_tags = _statistics_half(
        blend.statistics_model, songs, frames, params, mel_basis, cache, jobs
    )
    if statistics_tags != list(accurate.TEACHER_TAGS):
        raise UsageError(f"{recipe_name}: the band student needs a student as its statistics half")
    torch.set_num_threads(max(jobs, 1))
    settings = band_student.METHODS[blend.patch_model]
    if epochs:
        settings = replace(settings, epochs=epochs)
    _log(f"teaching the band student (corpus and every clip, {settings.epochs} epochs) ...")
    data_for_student = band_student.band_data(
        songs.paths,
        params,
        cache_dir,
        jobs,
        log=_log,
        clip_views=settings.clip_views,
        corpus_views=settings.corpus_views,
    )
    every_clip = np.arange(len(songs.paths))
    # a band student trains for up to half an hour: a killed run resumes after its last epoch
    state_path = band_student.training_state_path(data_for_student, every_clip, songs.labels, settings, cache_dir)
    taught, _ = band_student.teach(
        data_for_student, every_clip, songs.labels, settings, log=_log, cache_dir=cache_dir, state_path=state_path
    )
    matrix = accurate.teacher_tag_matrix(accurate.teacher_tag_names())
    network = HybridTagger(
        BandStudentTagger(taught.network, taught.heads, matrix), statistics_module, blend.statistics_weight
    )
    tags = [*songs.tags, *statistics_tags]
    windows = sum(len(s) for s in data_for_student.starts[: data_for_student.n_files])
    description = (
        f"{1 - blend.statistics_weight:g} x [a band student: {band_student.describe(settings)}] + "
        f"{blend.statistics_weight:g} x {statistics_description}"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    model_id = export_onnx(
        network,
        str(output),
        tags,
        params,
        mel_basis,
        recipe_name,
        description,
        f"{songs.description}; trained on all {len(songs.paths)} songs; band student: {windows} teacher patches "
        f"of the corpus and the clips ({settings.clip_views} augmented views of each clip, {settings.corpus_views} "
        f"of each corpus file), {settings.epochs} epochs; {statistics_note}",
        False,
        band_windows=True,
    )
    if os.path.exists(state_path):  # the model is written: nothing left to resume
        os.remove(state_path)
    _log(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), model id {model_id}")
    return model_id


def _statistics_half(kind: str, songs, frames, params, mel_basis, cache, jobs):
    """A blend's song-statistics half, trained on every song: (torch module for the graph,
    its description, a training note, the tags it adds after the data's own). `kind` is
    "mlp-rich" or a student (student.STUDENTS: "mlp-student", "mlp-student-bands"); a
    student adds the teacher-derived tags (accurate.TEACHER_TAGS), which only it learns."""
    from . import student
    from .network import StatisticsMLP, StatisticsStudentModule
    from .recipes import STATISTICS_MODELS, fit_statistics_model

    if kind in student.STUDENTS:
        from . import accurate

        with_bands = student.STUDENTS[kind]
        _log("teaching the song-statistics student (corpus and every clip) ...")
        teacher_cache = accurate.teacher_cache(cache)
        cache_dir = str(cache) if cache else None
        corpus = student.corpus_pairs(
            params, mel_basis, cache_dir, teacher_cache, jobs, log=_log, with_bands=with_bands
        )
        outputs = accurate.teacher_outputs(songs.paths, teacher_cache, log=_log)
        bands = student.clip_bands(songs.paths, params, cache_dir, jobs) if with_bands else [None] * len(songs.paths)
        clip_pairs = [student.segment_pairs(f, o, params, b) for f, o, b in zip(frames, outputs, bands)]
        taught = student.fit_student(*corpus, [p[0] for p in clip_pairs], [p[1] for p in clip_pairs], songs.labels)
        matrix = accurate.teacher_tag_matrix(accurate.teacher_tag_names())
        inputs = (
            "statistics (features.song_statistics) and band statistics (frontends.MfccFrontEnd.patches_and_bands)"
            if with_bands
            else "statistics (features.song_statistics)"
        )
        return (
            StatisticsStudentModule(taught, matrix, with_bands=with_bands),
            f"a student on each 30 s segment's {inputs}: an MLP "
            f"({student.HIDDEN_UNITS} hidden) regressing the musicnn teachers' 500 outputs, fitted on the "
            "unlabelled corpus and the clips, with a logistic regression per tag on its outputs; "
            f"{len(accurate.TEACHER_TAGS)} teacher-derived tags from its estimate of the teachers' tag probabilities",
            f"student: {len(corpus[0])} corpus segments + {len(songs.paths)} clips, {taught.mlp.n_iter_} iterations",
            list(accurate.TEACHER_TAGS),
        )
    _log("training the song-statistics MLP ...")
    statistics, alpha = STATISTICS_MODELS[kind]
    model = fit_statistics_model(np.stack([statistics(f) for f in frames]), songs.labels, alpha=alpha)
    return (
        StatisticsMLP(model),
        f"an MLP (256 hidden, alpha {alpha:g}) on each song's statistics (features.song_statistics: MFCC mean, "
        "standard deviation, correlations, skewness, kurtosis)",
        f"song-statistics MLP: {model.mlp.n_iter_} iterations on every song",
        [],
    )


def evaluate_methods(data: Path, layout: str, methods: list[str], results: Path, cache: Path | None, jobs: int) -> None:
    from .evaluation import BASELINES, REFERENCE_RANKINGS, TEACHER_METHODS, markdown_table, run_evaluation
    from .recipes import BLENDS, ENSEMBLES, RECIPES

    if methods == ["all"]:
        methods = [*BASELINES, *RECIPES, *ENSEMBLES, *BLENDS, *TEACHER_METHODS, *REFERENCE_RANKINGS]
    known = {*RECIPES, *BASELINES, *ENSEMBLES, *BLENDS, *TEACHER_METHODS, *REFERENCE_RANKINGS}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise UsageError(
            f"unknown methods {', '.join(unknown)}; baselines: {', '.join(BASELINES)}; "
            f"recipes: {', '.join(RECIPES)}; ensembles and blends: "
            f"{', '.join([*ENSEMBLES, *BLENDS])}; on the musicnn teachers: {', '.join(TEACHER_METHODS)}; "
            f"query-by-example references (no tags): {', '.join(REFERENCE_RANKINGS)}"
        )
    songs = load_songs(data, layout)
    params = FeatureParams()
    table = run_evaluation(
        songs,
        params,
        librosa_mel_basis(params),
        methods,
        str(results),
        cache_dir=str(cache) if cache else None,
        jobs=jobs,
        log=_log,
    )
    print(markdown_table(table))
