"""The paper's CNN in PyTorch (training only; the CLI runs the exported ONNX graph).

Input: patches, shape (batch, 195, 10), raw MFCC values; the per-coefficient
mean and standard deviation of the training set are buffers of the module, so
the normalisation is part of the exported graph. Output: per-tag sigmoid
probabilities, shape (batch, n_tags).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..frontends import LOGMEL_BANDS, MFCC_STATISTICS


class PatchCNN(nn.Module):
    """Two 3x3 convolutions (32 filters, ReLU), each followed by 2x2 max-pooling,
    then a fully connected layer to the vocabulary and a sigmoid.

    `layout` says what the convolutions slide over:
    - "paper": the patch as it is, a (195, 10) image whose rows are 5 stacked frames
      of 39 coefficients and whose columns are the 10 long frames (Qin et al.);
    - "time_frequency" (beyond the paper): the same patch rearranged inside the graph
      into 3 channels (static, delta, delta-delta) of 13 cepstral coefficients by
      50 frames, so that a 3x3 kernel sees neighbouring coefficients at neighbouring
      times instead of straddling the seams between stacked frames. The model's input
      is unchanged.
    """

    def __init__(
        self,
        n_tags: int,
        patch_shape: tuple[int, int] = (195, 10),
        filters: int = 32,
        frame_dim: int = 39,
        dropout: float = 0.0,
        layout: str = "paper",
        time_pooling: bool = False,
    ):
        super().__init__()
        height, width = patch_shape
        self.register_buffer("feature_mean", torch.zeros(height, 1))
        self.register_buffer("feature_scale", torch.ones(height, 1))
        self.frame_dim = frame_dim
        self.layout = layout
        if layout == "paper":
            channels, image_height, image_width = 1, height, width
        elif layout == "time_frequency":
            stacked = height // frame_dim
            channels, image_height, image_width = 3, frame_dim // 3, stacked * width
        else:
            raise ValueError(f"unknown layout {layout!r}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, filters, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(filters, filters, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        # time_pooling (beyond the paper): mean and max over time of the last feature
        # maps instead of flattening them, so the classifier sees statistics of the
        # whole patch and has far fewer weights to fit
        self.time_pooling = time_pooling
        if time_pooling:
            pooled = 2 * filters * (image_height // 2 // 2)
        else:
            pooled = filters * (image_height // 2 // 2) * (image_width // 2 // 2)
        # dropout is not in the paper (0 keeps it out); identity in the exported graph
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(pooled, n_tags)

    def set_normalisation(self, frame_mean: np.ndarray, frame_std: np.ndarray) -> None:
        """Per-coefficient statistics, shape (39,), tiled over the 5 frames of a long frame."""
        repeats = self.feature_mean.shape[0] // self.frame_dim
        mean = np.tile(np.asarray(frame_mean, dtype=np.float32), repeats)[:, None]
        scale = 1.0 / np.maximum(np.tile(np.asarray(frame_std, dtype=np.float32), repeats), 1e-6)
        self.feature_mean.copy_(torch.from_numpy(mean))
        self.feature_scale.copy_(torch.from_numpy(scale[:, None]))

    def image(self, normalised: torch.Tensor) -> torch.Tensor:
        """(batch, 195, 10) patches as the (batch, channels, height, width) input of the convolutions."""
        if self.layout == "paper":
            return normalised.unsqueeze(1)
        batch, height, width = normalised.shape
        stacked = height // self.frame_dim
        # rows are (short frame, coefficient), columns long frames; frame t = long * 5 + short
        frames = normalised.reshape(batch, stacked, self.frame_dim, width).permute(0, 2, 3, 1)
        return frames.reshape(batch, 3, self.frame_dim // 3, width * stacked)

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        normalised = (patches - self.feature_mean) * self.feature_scale
        hidden = self.features(self.image(normalised))
        if self.time_pooling:
            hidden = torch.cat([hidden.mean(3), hidden.amax(3)], 1)
        return self.classifier(self.dropout(hidden.flatten(1)))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(patches))


class EnsembleCNN(nn.Module):
    """The mean of several PatchCNNs' sigmoid outputs, exported as one graph (beyond the paper)."""

    def __init__(self, members: list[PatchCNN]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(patches) for member in self.members]).mean(0)


class StatisticsMLP(nn.Module):
    """training.StatisticsModel (sklearn) as a torch module, for export: input per-song
    statistics, shape (batch, n_statistics) (182 for features.song_statistics); output
    per-tag probabilities, shape (batch, n_tags), exactly sklearn's predict_proba
    (untrainable tags: their prior)."""

    statistics_features = (MFCC_STATISTICS,)

    def __init__(self, model):
        super().__init__()
        self.input_dim = len(model.scaler.mean_)
        n_tags = len(model.prior)
        hidden_weight, output_weight = (np.asarray(w, dtype=np.float32) for w in model.mlp.coefs_)
        hidden_bias, output_bias = (np.asarray(b, dtype=np.float32) for b in model.mlp.intercepts_)
        # untrainable tags get zero weights and are replaced by their prior via the mask
        full_weight = np.zeros((output_weight.shape[0], n_tags), dtype=np.float32)
        full_bias = np.zeros(n_tags, dtype=np.float32)
        full_weight[:, model.trainable] = output_weight
        full_bias[model.trainable] = output_bias
        mask = np.zeros(n_tags, dtype=np.float32)
        mask[model.trainable] = 1.0
        for name, value in [
            ("mean", model.scaler.mean_),
            ("scale", 1.0 / model.scaler.scale_),
            ("hidden_weight", hidden_weight),
            ("hidden_bias", hidden_bias),
            ("output_weight", full_weight),
            ("output_bias", full_bias),
            ("trainable", mask),
            ("prior", model.prior),
        ]:
            self.register_buffer(name, torch.from_numpy(np.asarray(value, dtype=np.float32)))

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(((statistics - self.mean) * self.scale) @ self.hidden_weight + self.hidden_bias)
        probabilities = torch.sigmoid(hidden @ self.output_weight + self.output_bias)
        return self.prior + self.trainable * (probabilities - self.prior)


class StatisticsStudentModule(nn.Module):
    """student.StatisticsStudent as a torch module, for export: per-segment statistics
    (batch, 182) -> the student's estimate of the teachers' 500 outputs -> the heads' 4Q
    tag probabilities (batch, n_tags), exactly StatisticsStudent.predict; with
    `teacher_tag_matrix` (100, n_teacher_tags) (accurate.teacher_tag_matrix), followed by
    the teacher-derived tags from the student's estimate of the teachers' 100 tag
    probabilities (the last 100 of the 500), exactly StatisticsStudent.teacher_tags."""

    def __init__(self, student, teacher_tag_matrix: np.ndarray | None = None, with_bands: bool = False):
        super().__init__()
        #: what its input holds per segment (model metadata `qbsd.statistics_features`)
        self.statistics_features = (MFCC_STATISTICS, LOGMEL_BANDS) if with_bands else (MFCC_STATISTICS,)
        self.input_dim = len(student.x_mean)
        self.with_teacher_tags = teacher_tag_matrix is not None
        if self.with_teacher_tags:
            self.register_buffer("teacher_tag_matrix", torch.from_numpy(teacher_tag_matrix.astype(np.float32)))
        hidden_weight, output_weight = (np.asarray(w, dtype=np.float32) for w in student.mlp.coefs_)
        hidden_bias, output_bias = (np.asarray(b, dtype=np.float32) for b in student.mlp.intercepts_)
        heads = student.heads
        for name, value in [
            ("x_mean", student.x_mean),
            ("x_inverse_scale", 1.0 / student.x_scale),
            ("hidden_weight", hidden_weight),
            ("hidden_bias", hidden_bias),
            ("output_weight", output_weight),
            ("output_bias", output_bias),
            ("y_mean", student.y_mean),
            ("y_scale", student.y_scale),
            ("head_mean", heads.mean),
            ("head_inverse_scale", 1.0 / heads.scale),
            ("head_weight", heads.weights),
            ("head_bias", heads.bias),
        ]:
            self.register_buffer(name, torch.from_numpy(np.asarray(value, dtype=np.float32)))

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(((statistics - self.x_mean) * self.x_inverse_scale) @ self.hidden_weight + self.hidden_bias)
        teacher = (hidden @ self.output_weight + self.output_bias) * self.y_scale + self.y_mean
        logits = ((teacher - self.head_mean) * self.head_inverse_scale) @ self.head_weight + self.head_bias
        tags = torch.sigmoid(logits)
        if not self.with_teacher_tags:
            return tags
        probabilities = teacher[:, -self.teacher_tag_matrix.shape[0] :].clamp(0.0, 1.0)
        return torch.cat([tags, probabilities @ self.teacher_tag_matrix], dim=1)


class HybridTagger(nn.Module):
    """A patch model and a song-statistics model in one graph (beyond the paper).

    forward(patches (batch, 195, 10), song_statistics (songs, 182)) returns both models'
    probabilities, (batch, n_tags) and (songs, n_tags); the song vector mixes them as
    (1 - statistics_weight) * mean over patches + statistics_weight * statistics output
    (model.TagModel; the weight is in the ONNX metadata). The last `statistics_only`
    tags are the statistics model's alone: the patch model has no output for them, its
    `tags` column is zero there and their weight is 1 (metadata `qbsd.statistics_only_tags`).
    """

    def __init__(
        self, patch_model: nn.Module, statistics_model: nn.Module, statistics_weight: float, statistics_only: int = 0
    ):
        super().__init__()
        self.patch_model = patch_model
        self.statistics_model = statistics_model
        self.statistics_weight = statistics_weight
        self.statistics_only = statistics_only

    def forward(self, patches: torch.Tensor, song_statistics: torch.Tensor):
        patch_tags = self.patch_model(patches)
        if self.statistics_only:
            patch_tags = nn.functional.pad(patch_tags, (0, self.statistics_only))
        return patch_tags, self.statistics_model(song_statistics)


class BandStudentNetwork(nn.Module):
    """The band student (band_student.py, beyond the paper): log-mel windows (batch, 258, 96)
    -> the teachers' 500 outputs (batch, 500). Standardised per band inside (buffers
    `band_mean`, `band_scale`), frames averaged in pairs (23 ms, the paper's analysis
    frame), four 1-D convolutions over time with the bands as channels (width, width,
    2 width, 2 width filters; batch norm, ReLU, max-pooling by 2 between them), the mean
    and maximum over time, a linear layer; outputs de-standardised (`target_mean`,
    `target_scale`)."""

    def __init__(self, band_mean, band_scale, target_mean, target_scale, width: int = 128, dropout: float = 0.2):
        super().__init__()
        for name, value in (
            ("band_mean", band_mean),
            ("band_scale", band_scale),
            ("target_mean", target_mean),
            ("target_scale", target_scale),
        ):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, dtype=np.float32)))

        def block(inputs: int, outputs: int) -> list:
            return [nn.Conv1d(inputs, outputs, 3, padding=1), nn.BatchNorm1d(outputs), nn.ReLU()]

        self.body = nn.Sequential(
            nn.AvgPool1d(2),
            *block(len(band_mean), width),
            nn.MaxPool1d(2),
            *block(width, width),
            nn.MaxPool1d(2),
            *block(width, 2 * width),
            nn.MaxPool1d(2),
            *block(2 * width, 2 * width),
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(4 * width, len(target_mean))

    def standardised(self, windows: torch.Tensor) -> torch.Tensor:
        """The standardised teacher outputs (batch, 500), what training regresses."""
        x = self.body(((windows - self.band_mean) / self.band_scale).transpose(1, 2))
        return self.out(self.dropout(torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.standardised(windows) * self.target_scale + self.target_mean


class BandStudentTagger(nn.Module):
    """band_student.BandStudent as the patch half of the fast model's graph: band windows
    (batch, 258, 96) -> the student's estimate of the teachers' 500 outputs -> the heads'
    4Q tag probabilities, followed by the teacher-derived tags from its estimate of the
    teachers' 100 tag probabilities (the last 100 of the 500) through `teacher_tag_matrix`
    (100, n_teacher_tags), clipped to 0 ... 1 first, as StatisticsStudentModule does."""

    def __init__(self, network: BandStudentNetwork, heads, teacher_tag_matrix: np.ndarray):
        super().__init__()
        self.network = network
        weights, bias = heads.folded()
        self.register_buffer("head_weight", torch.from_numpy(weights))
        self.register_buffer("head_bias", torch.from_numpy(bias))
        self.register_buffer("teacher_tag_matrix", torch.from_numpy(teacher_tag_matrix.astype(np.float32)))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        teacher = self.network(windows)
        tags = torch.sigmoid(teacher @ self.head_weight + self.head_bias)
        probabilities = torch.clamp(teacher[:, -self.teacher_tag_matrix.shape[0] :], 0.0, 1.0)
        return torch.cat([tags, probabilities @ self.teacher_tag_matrix], dim=1)
