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


class PatchCNN(nn.Module):
    """Two 3x3 convolutions (32 filters, ReLU), each followed by 2x2 max-pooling,
    then a fully connected layer to the vocabulary and a sigmoid."""

    def __init__(self, n_tags: int, patch_shape: tuple[int, int] = (195, 10),
                 filters: int = 32, frame_dim: int = 39, dropout: float = 0.0):
        super().__init__()
        height, width = patch_shape
        self.register_buffer("feature_mean", torch.zeros(height, 1))
        self.register_buffer("feature_scale", torch.ones(height, 1))
        self.frame_dim = frame_dim
        self.features = nn.Sequential(
            nn.Conv2d(1, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        pooled = filters * (height // 2 // 2) * (width // 2 // 2)
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

    def logits(self, patches: torch.Tensor) -> torch.Tensor:
        normalised = (patches - self.feature_mean) * self.feature_scale
        hidden = self.features(normalised.unsqueeze(1))
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
