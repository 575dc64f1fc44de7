"""Per-teacher adaptor heads: a 2-layer summary MLP and a 2-layer per-token feature MLP.

    >>> heads = TeacherAdaptor(student_dim=320, summary_dim=1024, feature_dim=512, grid=(14, 14))
    >>> summary, features = heads(student_summary, student_features)   # (B, 1024), (B, 512, 14, 14)

Student features are resampled (bilinear) to the teacher's grid before the feature MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp2(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear, applied over the last dimension."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.norm(self.fc1(x))))


class TeacherAdaptor(nn.Module):
    """The student-side heads for one teacher."""

    def __init__(
        self,
        student_summary_dim: int,
        student_feature_dim: int,
        summary_dim: int,
        feature_dim: int,
        grid: tuple[int, int],
        hidden: int | None = None,
    ):
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.summary = Mlp2(student_summary_dim, hidden or max(student_summary_dim, summary_dim), summary_dim)
        self.features = Mlp2(student_feature_dim, hidden or max(student_feature_dim, feature_dim), feature_dim)

    def forward(self, summary: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(features.shape[-2:]) != self.grid:
            features = F.interpolate(features, size=self.grid, mode="bilinear", align_corners=False)
        tokens = self.features(features.permute(0, 2, 3, 1))  # per token
        return self.summary(summary), tokens.permute(0, 3, 1, 2)
