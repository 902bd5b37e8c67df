"""The shipped tag models: ONNX graphs plus the metadata that makes them self-describing.

Two ship in the package: `fast` (models/qbsd.onnx, the default: a CNN over 3 s windows of
the band log-mel, its convolutions in int8, blended with a student on song statistics, both
taught by the musicnn teachers) and `accurate` (models/qbsd-accurate.onnx: the musicnn
teachers with heads trained on the 4Q labels, their last layers fine-tuned). `--model` takes either name, or
the path of any qbsd model file.

Metadata keys (all strings): `qbsd.model_id`, `qbsd.tags` (JSON list, vocabulary
order = output order), `qbsd.front_end` (`mfcc` when absent, `mfcc-bands` or
`musicnn-logmel`: see frontends.py), `qbsd.training_data`, `qbsd.recipe`; an `mfcc` or
`mfcc-bands` model also has `qbsd.feature_params` (JSON of FeatureParams) and
`qbsd.mel_basis` (base64 .npy, (n_mels, 1 + n_fft // 2) float32); a quantised copy of a
model has `qbsd.quantisation` (JSON: the float model's id, what was quantised and how it
was calibrated; training/quantise.py). Input `patches` (batch,
195, 10) float32 raw MFCC values, (batch, 258, 96) band log-mel windows (`mfcc-bands`), or
(batch, 187, 96) log-mel (normalisation is inside the graph); output `tags`
(batch, n_tags), per-patch sigmoid probabilities. A song's vector is the mean of its
patches' outputs.

A blended model (metadata `qbsd.statistics_weight` = w) has a second, optional
input `song_statistics` (songs, 182), each song's MFCC statistics
(features.song_statistics), and a second output
`statistics_tags` (songs, n_tags); its song vector is (1 - w) x the mean of
`tags` + w x `statistics_tags`. When `qbsd.statistics_features` is
`mfcc-statistics+logmel-bands`, `song_statistics` is (songs, 502): the 182 followed by the
segment's 320 band statistics (frontends.MfccFrontEnd.patches_and_bands). Tags listed in
`qbsd.statistics_only_tags` (a JSON list;
the teacher-derived tags that only the statistics half learnt) take w = 1: their `tags`
column is zero.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from . import fingerprint
from .errors import ModelError, TooShortError
from .features import FeatureParams, decode_array, song_statistics
from .frontends import (
    LOGMEL_BANDS,
    MFCC,
    MFCC_BANDS,
    MFCC_STATISTICS,
    MUSICNN_LOGMEL,
    STATISTICS_DIMS,
    LogMelFrontEnd,
    MfccBandsFrontEnd,
    MfccFrontEnd,
)
from .logmel import band_statistics
from .settings import DEFAULT_DUPLICATE_COSINE, DEFAULT_MAX_SEGMENTS, SEGMENT_SECONDS

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

    from .audio import DecodedAudio
    from .features import MfccExtractor
    from .frontends import FrontEnd

MODEL_FILENAME = "qbsd.onnx"
#: The models shipped in the package, by the names `--model` takes.
SHIPPED_MODELS = {"fast": MODEL_FILENAME, "accurate": "qbsd-accurate.onnx"}
PATCHES_PER_RUN = 256  # patches per onnxruntime call: large enough to amortise the call
# onnxruntime warns at every load that song_statistics, an input with a default, is not
# constant-folded; that is intended (model.py docstring), and the warning would reach stderr
ORT_ERRORS_ONLY = 3


def shipped_model_path(name: str = "fast") -> Path:
    """The file of a shipped model (`fast` or `accurate`), in the installed package or,
    in a source checkout, in models/."""
    filename = SHIPPED_MODELS[name]
    installed = Path(__file__).resolve().parent / "models" / filename
    if installed.exists():
        return installed
    return Path(__file__).resolve().parent.parent / "models" / filename


def requested_model(model: str | os.PathLike[str] | None) -> str | None:
    """The model a command asks for: `model` (a shipped model's name or a path), else
    $QBSD_MODEL, else None. The one place that reads $QBSD_MODEL."""
    return str(model) if model else os.environ.get("QBSD_MODEL") or None


def resolve_model_path(model: str | os.PathLike[str] | None = None) -> Path:
    """The model file meant by `model`: a shipped model's name (`fast`, `accurate`), a path,
    or None for $QBSD_MODEL (itself a name or a path), else the fast model."""
    chosen = requested_model(model) or "fast"
    return shipped_model_path(chosen) if chosen in SHIPPED_MODELS else Path(chosen)


def model_for_index(model: str | os.PathLike[str] | None, index_model_id: str | None) -> str | os.PathLike[str] | None:
    """The model to use on an index bound to `index_model_id`: `model` when one is named
    (or $QBSD_MODEL is set), else the shipped model that made the index, so that an index
    built with `--model accurate` keeps its model without naming it again."""
    if requested_model(model) or index_model_id is None:
        return model
    for name in SHIPPED_MODELS:
        if _shipped_model_id(name) == index_model_id:
            return name
    return model


def _shipped_model_id(name: str) -> str | None:
    """The id of a shipped model (None when its file is missing or unreadable)."""
    path = shipped_model_path(name)
    try:
        info = path.stat()
    except OSError:
        return None
    return _model_id_of(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _model_id_of(path: Path, size: int, mtime_ns: int) -> str | None:
    # keyed by size and mtime: a rewritten file is read again
    try:
        return read_metadata(path).get("qbsd.model_id")
    except ModelError:
        return None


#: The metadata key of a model's measured duplicate threshold (ModelInfo.duplicate_cosine).
DUPLICATE_COSINE_KEY = "qbsd.duplicate_cosine"


def duplicate_threshold(model_id: str | None) -> float:
    """The duplicate cosine of the model `model_id` (an index knows only its model's id):
    the shipped model's own metadata when the id is a shipped model's, else
    DEFAULT_DUPLICATE_COSINE."""
    for name in SHIPPED_MODELS:
        if model_id is not None and _shipped_model_id(name) == model_id:
            return ModelInfo.read(name).duplicate_cosine
    return DEFAULT_DUPLICATE_COSINE


def default_model_path() -> Path:
    """The model used when none is named: $QBSD_MODEL, else the shipped fast model."""
    return resolve_model_path(None)


@dataclass(frozen=True)
class SongVector:
    """A song's tag vector, shape (n_tags,), the seconds of audio analysed and its audio
    fingerprint."""

    vector: np.ndarray
    duration: float
    #: the audio fingerprint of the file's first 30 s (fingerprint.py), None when too short
    fingerprint: bytes | None = None


def _session(path: Path, optimise: bool, threads: int = 1) -> InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if optimise:
        # One thread per session: parallelism comes from --jobs worker processes,
        # so several sessions never compete for the same cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    else:  # only the metadata is wanted: no optimised kernels, no thread pool per core
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
    options.log_severity_level = ORT_ERRORS_ONLY
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ModelError(f"cannot load model {path}: {str(error).splitlines()[0]}") from None


def read_metadata(path: Path | str) -> dict[str, str]:
    """The `qbsd.*` metadata of an ONNX file, without building an inference session's kernels."""
    return dict(_session(Path(path), optimise=False).get_modelmeta().custom_metadata_map)


def _check_outputs(path: Path, statistics_weight: float, session: InferenceSession) -> None:
    """A qbsd graph has a `tags` output (and `statistics_tags` when it is a blend)."""
    outputs = {output.name for output in session.get_outputs()}
    if "tags" not in outputs or (statistics_weight and "statistics_tags" not in outputs):
        raise ModelError(f"{path} is not a qbsd model (outputs {sorted(outputs)})")


@dataclass(frozen=True)
class ModelInfo:
    """What a qbsd model file says about itself (its metadata), parsed in this one place."""

    path: Path
    model_id: str
    tags: list[str]
    front_end: str  # frontends.MFCC, MFCC_BANDS or MUSICNN_LOGMEL
    params: FeatureParams | None  # the MFCC front end's, None for the log-mel one
    mel_basis: np.ndarray | None
    statistics_weight: float
    metadata: dict[str, str]
    #: tags whose score comes from the statistics half alone (weight 1)
    statistics_only_tags: tuple[str, ...] = ()
    #: what the statistics half takes per segment, in input order (frontends.STATISTICS_DIMS)
    statistics_features: tuple[str, ...] = (MFCC_STATISTICS,)

    @property
    def duplicate_cosine(self) -> float:
        """The vector cosine at and above which two songs of this model are one recording:
        its metadata's `qbsd.duplicate_cosine` (measured by benchmarks/duplicates.py), else
        DEFAULT_DUPLICATE_COSINE."""
        return float(self.metadata.get(DUPLICATE_COSINE_KEY, DEFAULT_DUPLICATE_COSINE))

    def statistics_weights(self) -> np.ndarray:
        """(n_tags,) float64: the statistics half's share of each tag's score."""
        weights = np.full(len(self.tags), self.statistics_weight)
        only = set(self.statistics_only_tags)
        weights[[i for i, tag in enumerate(self.tags) if tag in only]] = 1.0
        return weights

    def make_front_end(self) -> FrontEnd:
        """The front end that cuts this model's patches (frontends.py)."""
        if self.front_end == MUSICNN_LOGMEL:
            return LogMelFrontEnd()
        assert self.params is not None and self.mel_basis is not None  # from an MFCC model's metadata
        if self.front_end == MFCC_BANDS:
            return MfccBandsFrontEnd(self.params, self.mel_basis)
        return MfccFrontEnd(self.params, self.mel_basis)

    @property
    def description(self) -> str:
        """One line for `qbsd tags --verbose`: which model, how it works, how fast."""
        if "qbsd.summary" in self.metadata:
            return self.metadata["qbsd.summary"]
        try:
            recipe = json.loads(self.metadata.get("qbsd.recipe", "{}")).get("name", "")
        except (ValueError, AttributeError):
            recipe = ""
        return f"recipe {recipe}, {self.front_end} front end" if recipe else f"{self.front_end} front end"

    @classmethod
    def from_metadata(cls, path: Path, metadata: dict[str, str]) -> ModelInfo:
        try:
            front_end = metadata.get("qbsd.front_end", MFCC)
            if front_end not in (MFCC, MFCC_BANDS, MUSICNN_LOGMEL):
                raise ValueError(f"unknown front end {front_end!r}")
            mfcc = front_end in (MFCC, MFCC_BANDS)
            if not mfcc:
                settings = json.loads(metadata["qbsd.front_end_params"])
                differing = {k: v for k, v in LogMelFrontEnd.SETTINGS.items() if settings.get(k) != v}
                if differing:
                    raise ValueError(f"front end settings {differing} differ from qbsd's")
            tags = json.loads(metadata["qbsd.tags"])
            statistics_only = tuple(json.loads(metadata.get("qbsd.statistics_only_tags", "[]")))
            if not set(statistics_only) <= set(tags):
                raise ValueError("qbsd.statistics_only_tags names tags the model lacks")
            statistics_features = tuple(metadata.get("qbsd.statistics_features", MFCC_STATISTICS).split("+"))
            if statistics_features[0] != MFCC_STATISTICS or not set(statistics_features) <= set(STATISTICS_DIMS):
                raise ValueError(f"unknown statistics features {'+'.join(statistics_features)!r}")
            return cls(
                path=path,
                model_id=metadata["qbsd.model_id"],
                tags=tags,
                front_end=front_end,
                params=FeatureParams.from_json(metadata["qbsd.feature_params"]) if mfcc else None,
                mel_basis=decode_array(metadata["qbsd.mel_basis"]) if mfcc else None,
                statistics_weight=float(metadata.get("qbsd.statistics_weight", "0")) if mfcc else 0.0,
                metadata=metadata,
                statistics_only_tags=statistics_only,
                statistics_features=statistics_features,
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ModelError(f"{path} is not a qbsd model (metadata {error})") from None

    @classmethod
    def read(cls, model: str | os.PathLike[str] | None = None) -> ModelInfo:
        """The model `model` names (see resolve_model_path), without loading it for
        inference; raises ModelError."""
        path = resolve_model_path(model)
        session = _session(path, optimise=False)
        info = cls.from_metadata(path, dict(session.get_modelmeta().custom_metadata_map))
        _check_outputs(path, info.statistics_weight, session)
        return info


class TagModel:
    """Runs the ONNX model on audio files: decode -> front end -> patches -> mean of outputs."""

    def __init__(self, path: str | os.PathLike[str] | None = None, threads: int = 1):
        self.path = resolve_model_path(path)
        self.session = _session(self.path, optimise=True, threads=threads)
        info = ModelInfo.from_metadata(self.path, dict(self.session.get_modelmeta().custom_metadata_map))
        self.info = info
        self.model_id = info.model_id
        self.tags = info.tags
        self.params = info.params
        self.metadata = info.metadata
        self.statistics_weight = info.statistics_weight
        self._statistics_weights = info.statistics_weights()
        self._with_bands = LOGMEL_BANDS in info.statistics_features
        self.front_end = info.make_front_end()
        #: the MFCC extractor of an `mfcc` model (None for the log-mel front end)
        self.extractor: MfccExtractor | None = self.front_end.extractor
        _check_outputs(self.path, self.statistics_weight, self.session)

    def patch_outputs(self, patches: np.ndarray) -> np.ndarray:
        """Per-patch tag probabilities, (n_patches, n_tags), for the front end's patches
        ((n_patches, 195, 10) MFCC or (n_patches, 187, 96) log-mel)."""
        outputs = [
            self.session.run(["tags"], {"patches": patches[i : i + PATCHES_PER_RUN]})[0]
            for i in range(0, len(patches), PATCHES_PER_RUN)
        ]
        return np.concatenate(outputs)

    def statistics_outputs(self, statistics: np.ndarray) -> np.ndarray:
        """The song-statistics model's tag probabilities, (n, n_tags), for statistics (n, 182)."""
        # the graph's patches input is required; one blank patch costs well under a millisecond
        blank = self.front_end.blank_patch()
        return self.session.run(
            ["statistics_tags"], {"patches": blank, "song_statistics": statistics.astype(np.float32)}
        )[0]

    def _song_vector(
        self, patch_sum: np.ndarray, n_patches: int, statistics: list[np.ndarray], patch_counts: list[int]
    ) -> np.ndarray:
        """The song vector from the summed patch outputs and, for a blended model, the
        statistics of each analysed segment, weighted by the segment's patches."""
        vector = patch_sum / n_patches
        if self.statistics_weight:
            per_segment = self.statistics_outputs(np.stack(statistics)).astype(np.float64)
            statistics_vector = np.asarray(patch_counts, dtype=np.float64) @ per_segment / n_patches
            weights = self._statistics_weights
            vector = (1 - weights) * vector + weights * statistics_vector
        return vector.astype(np.float32)

    def _segment_features(
        self, samples: np.ndarray, with_log_mel: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(patches, the statistics half's input or None, the log-mel or None) of one
        segment's samples: (182,) of its MFCC frames, or (502,) with its band statistics
        (`qbsd.statistics_features`); with_log_mel also gives the segment's 96-band log-mel
        (n_frames, 96) from the same spectrum, which the audio fingerprint is computed from."""
        if with_log_mel:
            patches, frames, log_mel = self.front_end.patches_and_log_mel(samples)
            statistics = None
            if self.statistics_weight and len(patches):
                assert frames is not None  # a blended model's front end is an MFCC one
                statistics = song_statistics(frames)
                if self._with_bands:
                    statistics = np.concatenate([statistics, band_statistics(log_mel)])
            return patches, statistics, log_mel
        if not self.statistics_weight:
            return self.front_end.patches(samples)[0], None, None
        # a blended model's front end is an MFCC one (ModelInfo gives the log-mel one no statistics weight)
        mfcc_front_end = cast(MfccFrontEnd, self.front_end)
        if not self._with_bands:
            patches, frames = mfcc_front_end.patches(samples)
            return patches, song_statistics(frames) if len(patches) else None, None
        patches, frames, bands = mfcc_front_end.patches_and_bands(samples)
        return patches, np.concatenate([song_statistics(frames), bands]) if len(patches) else None, None

    def _too_short(self, seconds: float) -> TooShortError:
        return TooShortError(f"too short: {seconds:.2f} s, needs at least {self.front_end.min_seconds:.2f} s")

    def vector_from_samples(self, samples: np.ndarray) -> np.ndarray:
        """Song vector (n_tags,) float32 from mono samples at the model's sample rate
        (`front_end.sample_rate`), analysed as one piece; TooShortError if shorter than a patch."""
        patches, segment_statistics, _log_mel = self._segment_features(samples)
        if len(patches) == 0:
            raise self._too_short(len(samples) / self.front_end.sample_rate)
        patch_sum = self.patch_outputs(patches).sum(axis=0, dtype=np.float64)
        statistics: list[np.ndarray] = []
        if self.statistics_weight:
            assert segment_statistics is not None  # a blended model's, for a segment with patches
            statistics.append(segment_statistics)
        return self._song_vector(patch_sum, len(patches), statistics, [len(patches)])

    def network_inputs(
        self, path: str, max_segments: int | None = DEFAULT_MAX_SEGMENTS
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """What the graph is fed for the file at `path`, per analysed segment (as `analyse`
        chooses them): (patches, the segment's song statistics or None for an unblended
        model); a segment without a patch is left out. For calibrating a quantised copy."""
        for _number, segment, analysed in self._segments(path, max_segments):
            if analysed:
                patches, segment_statistics, _log_mel = self._segment_features(segment.samples)
                if len(patches):
                    yield patches, segment_statistics

    def _segments(self, path: str, max_segments: int | None) -> Iterator[tuple[int, DecodedAudio, bool]]:
        """(number, decoded segment, whether it is analysed) for each segment that
        `decode_segments` reads; a later segment shorter than the front end's
        `min_later_segment_seconds` (a file's tail) would be mostly padding, and the
        training data skips it too."""
        from .audio import decode_segments

        for number, segment in enumerate(
            decode_segments(path, self.front_end.sample_rate, SEGMENT_SECONDS, max_segments)
        ):
            yield number, segment, not number or segment.duration >= self.front_end.min_later_segment_seconds

    def analyse(self, path: str, max_segments: int | None = DEFAULT_MAX_SEGMENTS) -> SongVector:
        """Decode and analyse one file; raises AudioError or TooShortError.

        The file is analysed in segments of SEGMENT_SECONDS (the length of the
        training clips, each processed exactly like one), at most `max_segments`
        of them evenly spread over the file (None: all). The vector is the mean
        of the outputs of every patch of every analysed segment (for a blended
        model, mixed with the statistics model's output per segment, each
        weighted by its patches); `duration` is the number of seconds analysed.
        """
        total = np.zeros(len(self.tags), dtype=np.float64)
        n_patches = 0
        seconds = 0.0
        statistics: list[np.ndarray] = []
        patch_counts: list[int] = []
        audio_fingerprint = None
        for number, segment, analysed in self._segments(path, max_segments):
            seconds += segment.duration
            if not analysed:
                continue
            patches, segment_statistics, log_mel = self._segment_features(segment.samples, with_log_mel=number == 0)
            # the first segment analysed: the file's first 30 s, unless max_segments is 1 (then its middle)
            if number == 0:
                assert log_mel is not None  # asked for (with_log_mel)
                audio_fingerprint = fingerprint.compute(log_mel, self.front_end.sample_rate, self.front_end.hop_length)
            if len(patches):
                total += self.patch_outputs(patches).sum(axis=0, dtype=np.float64)
                n_patches += len(patches)
                if self.statistics_weight:
                    assert segment_statistics is not None  # a blended model's, for a segment with patches
                    statistics.append(segment_statistics)
                    patch_counts.append(len(patches))
        if n_patches == 0:
            raise self._too_short(seconds)
        return SongVector(self._song_vector(total, n_patches, statistics, patch_counts), seconds, audio_fingerprint)


def loaded_model(model: str | os.PathLike | None) -> TagModel:
    """The TagModel for `model` (a shipped model's name, a path, or None: $QBSD_MODEL or
    the fast model), loaded once: tag() called in a loop must not load it once per file."""
    path = resolve_model_path(model).resolve()
    try:
        info = path.stat()
    except OSError:
        return TagModel(path)  # raises the ModelError that names the file
    return _cached_model(path, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached_model(path: Path, size: int, mtime_ns: int) -> TagModel:
    # keyed by size and mtime too: a model file rewritten in place is loaded afresh
    return TagModel(path)
