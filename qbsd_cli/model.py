"""The shipped tag model: an ONNX graph plus the metadata that makes it self-describing.

Metadata keys (all strings): `qbsd.model_id`, `qbsd.tags` (JSON list, vocabulary
order = output order), `qbsd.feature_params` (JSON of FeatureParams),
`qbsd.mel_basis` (base64 .npy, (n_mels, 1 + n_fft // 2) float32),
`qbsd.training_data`, `qbsd.recipe`. Input `patches` (batch, 195, 10) float32,
raw MFCC values (normalisation is inside the graph); output `tags`
(batch, n_tags), per-patch sigmoid probabilities.

A blended model (metadata `qbsd.statistics_weight` = w) has a second, optional
input `song_statistics` (songs, 182), each song's MFCC statistics
(features.song_statistics), and a second output
`statistics_tags` (songs, n_tags); its song vector is (1 - w) x the mean of
`tags` + w x `statistics_tags`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, TooShortError
from .features import FeatureParams, MfccExtractor, decode_array, frames_to_patches, song_statistics
from .settings import DEFAULT_MAX_SEGMENTS, SEGMENT_SECONDS

MODEL_FILENAME = "qbsd.onnx"
PATCHES_PER_RUN = 256  # patches per onnxruntime call: large enough to amortise the call
# onnxruntime warns at every load that song_statistics, an input with a default, is not
# constant-folded; that is intended (model.py docstring), and the warning would reach stderr
ORT_ERRORS_ONLY = 3


def default_model_path() -> Path:
    """The ONNX file shipped with the package (or beside it, in a source checkout)."""
    override = os.environ.get("QBSD_MODEL")
    if override:
        return Path(override)
    installed = Path(__file__).resolve().parent / "models" / MODEL_FILENAME
    if installed.exists():
        return installed
    return Path(__file__).resolve().parent.parent / "models" / MODEL_FILENAME


@dataclass(frozen=True)
class SongVector:
    """A song's tag vector, shape (n_tags,), and the seconds of audio analysed."""

    vector: np.ndarray
    duration: float


def _session(path: Path, optimise: bool, threads: int = 1):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if optimise:
        # One thread per session: parallelism comes from --jobs worker processes,
        # so several sessions never compete for the same cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    else:  # only the metadata is wanted: skip building optimised kernels
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
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


@dataclass(frozen=True)
class ModelInfo:
    """What a qbsd model file says about itself (its metadata), parsed in this one place."""

    path: Path
    model_id: str
    tags: list[str]
    params: FeatureParams
    mel_basis: np.ndarray
    statistics_weight: float
    metadata: dict[str, str]

    @classmethod
    def from_metadata(cls, path: Path, metadata: dict[str, str]) -> ModelInfo:
        try:
            return cls(
                path=path,
                model_id=metadata["qbsd.model_id"],
                tags=json.loads(metadata["qbsd.tags"]),
                params=FeatureParams.from_json(metadata["qbsd.feature_params"]),
                mel_basis=decode_array(metadata["qbsd.mel_basis"]),
                statistics_weight=float(metadata.get("qbsd.statistics_weight", "0")),
                metadata=metadata,
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ModelError(f"{path} is not a qbsd model (metadata {error})") from None

    @classmethod
    def read(cls, path: Path | str | None = None) -> ModelInfo:
        """The model at `path` (default: the shipped one, or $QBSD_MODEL), without loading it
        for inference; raises ModelError."""
        path = Path(path) if path else default_model_path()
        return cls.from_metadata(path, read_metadata(path))


class TagModel:
    """Runs the ONNX model on audio files: decode -> MFCC -> patches -> mean of outputs."""

    def __init__(self, path: Path | str | None = None, threads: int = 1):
        self.path = Path(path) if path else default_model_path()
        self.session = _session(self.path, optimise=True, threads=threads)
        info = ModelInfo.from_metadata(self.path, dict(self.session.get_modelmeta().custom_metadata_map))
        self.info = info
        self.model_id = info.model_id
        self.tags = info.tags
        self.params = info.params
        self.metadata = info.metadata
        self.statistics_weight = info.statistics_weight
        self.extractor = MfccExtractor(self.params, info.mel_basis)
        outputs = {output.name for output in self.session.get_outputs()}
        if "tags" not in outputs or (self.statistics_weight and "statistics_tags" not in outputs):
            raise ModelError(f"{self.path} is not a qbsd model (outputs {sorted(outputs)})")

    def patch_outputs(self, patches: np.ndarray) -> np.ndarray:
        """Per-patch tag probabilities, (n_patches, n_tags), for patches (n_patches, 195, 10)."""
        outputs = [
            self.session.run(["tags"], {"patches": patches[i : i + PATCHES_PER_RUN]})[0]
            for i in range(0, len(patches), PATCHES_PER_RUN)
        ]
        return np.concatenate(outputs)

    def statistics_outputs(self, statistics: np.ndarray) -> np.ndarray:
        """The song-statistics model's tag probabilities, (n, n_tags), for statistics (n, 182)."""
        # the graph's patches input is required; one blank patch costs well under a millisecond
        blank = np.zeros((1, *self.params.patch_shape), dtype=np.float32)
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
            vector = (1 - self.statistics_weight) * vector + self.statistics_weight * statistics_vector
        return vector.astype(np.float32)

    def vector_from_samples(self, samples: np.ndarray) -> np.ndarray:
        """Song vector (n_tags,) float32 from mono samples at the model's sample rate,
        analysed as one piece; TooShortError if shorter than a patch."""
        frames = self.extractor.frames(samples)
        patches = frames_to_patches(frames, self.params)
        if len(patches) == 0:
            raise TooShortError(
                f"too short: {len(samples) / self.params.sample_rate:.2f} s, "
                f"needs at least {self.params.patch_seconds:.2f} s"
            )
        patch_sum = self.patch_outputs(patches).sum(axis=0, dtype=np.float64)
        return self._song_vector(patch_sum, len(patches), [song_statistics(frames)], [len(patches)])

    def analyse(self, path: str, max_segments: int | None = DEFAULT_MAX_SEGMENTS) -> SongVector:
        """Decode and analyse one file; raises AudioError or TooShortError.

        The file is analysed in segments of SEGMENT_SECONDS (the length of the
        training clips, each processed exactly like one), at most `max_segments`
        of them evenly spread over the file (None: all). The vector is the mean
        of the outputs of every patch of every analysed segment (for a blended
        model, mixed with the statistics model's output per segment, each
        weighted by its patches); `duration` is the number of seconds analysed.
        """
        from .audio import decode_segments

        total = np.zeros(len(self.tags), dtype=np.float64)
        n_patches = 0
        seconds = 0.0
        statistics, patch_counts = [], []
        for segment in decode_segments(path, self.params.sample_rate, SEGMENT_SECONDS, max_segments):
            seconds += segment.duration
            frames = self.extractor.frames(segment.samples)
            patches = frames_to_patches(frames, self.params)
            if len(patches):
                total += self.patch_outputs(patches).sum(axis=0, dtype=np.float64)
                n_patches += len(patches)
                if self.statistics_weight:
                    statistics.append(song_statistics(frames))
                    patch_counts.append(len(patches))
        if n_patches == 0:
            raise TooShortError(f"too short: {seconds:.2f} s, needs at least {self.params.patch_seconds:.2f} s")
        return SongVector(self._song_vector(total, n_patches, statistics, patch_counts), seconds)
