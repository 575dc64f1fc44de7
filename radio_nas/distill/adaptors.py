"""Per-teacher adaptor heads: a 2-layer summary MLP and a 2-layer per-token feature MLP.

    heads = TeacherAdaptor(student_dim=320, summary_dim=1024, feature_dim=512, grid=(14, 14))
    summary, features = heads(student_summary, student_features)   # (B, 1024), (B, 512, 14, 14)

Student features are resampled (bilinear) to the teacher's grid before the feature MLP. Given
``start`` (the constant predictor of each term, and a scale), the heads start there: output =
offset + scale * mlp(x) with the MLPs' last layers at zero, so step 0 predicts the constant exactly.
"""

from __future__ import annotations

from typing import NamedTuple

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


class TermStart(NamedTuple):
    """Where one head starts: its constant output and the scale of what the MLP adds to it."""

    offset: torch.Tensor
    """(D,) for the summary; (C, h, w) for features."""
    scale: torch.Tensor
    """(D,) per output channel."""


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
        start: tuple[TermStart, TermStart] | None = None,
    ):
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.summary = Mlp2(student_summary_dim, hidden or max(student_summary_dim, summary_dim), summary_dim)
        self.features = Mlp2(student_feature_dim, hidden or max(student_feature_dim, feature_dim), feature_dim)
        self.starts = start is not None
        if start is not None:
            for mlp in (self.summary, self.features):  # zero gain: the heads add nothing at step 0
                nn.init.zeros_(mlp.fc2.weight)
                nn.init.zeros_(mlp.fc2.bias)
            (s_off, s_scale), (f_off, f_scale) = start
            self.register_buffer("summary_offset", s_off.float().clone())
            self.register_buffer("summary_scale", s_scale.float().clone())
            self.register_buffer("feature_offset", f_off.float().clone())
            self.register_buffer("feature_scale", f_scale.float().clone().view(-1, 1, 1))

    def forward(self, summary: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(features.shape[-2:]) != self.grid:
            features = F.interpolate(features, size=self.grid, mode="bilinear", align_corners=False)
        s = self.summary(summary)
        f = self.features(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # per token
        if self.starts:
            s = self.summary_offset + self.summary_scale * s
            f = self.feature_offset + self.feature_scale * f
        return s, f
