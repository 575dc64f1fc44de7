"""Distillation losses (AM-RADIO recipe), per sample so balancing can weight each input.

For example:

    summary_loss(student_summary, teacher_summary)        # (B,): 1 - cos
    feature_loss(student_features, teacher_features)      # (B,): mean over tokens of
                                                           #   0.9 (1 - cos) + 0.1 SmoothL1(beta=2)
    feature_smooth_l1(student_features, teacher_features) # (B,): the SmoothL1 part alone (evaluation)
    mse_loss(student, teacher)                            # (B,): mean squared error over all values
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def summary_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B, D) pairs -> (B,) of 1 - cosine similarity."""
    return 1.0 - F.cosine_similarity(student, teacher, dim=1, eps=1e-6)


def feature_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    cos_weight: float = 0.9,
    smooth_l1_weight: float = 0.1,
    beta: float = 2.0,
) -> torch.Tensor:
    """(B, C, h, w) pairs -> (B,): per token cos_weight*(1 - cos over C) + smooth_l1_weight *
    SmoothL1(beta) averaged over C; then averaged over the h*w tokens."""
    cos = F.cosine_similarity(student, teacher, dim=1, eps=1e-6)  # (B, h, w)
    sl1 = F.smooth_l1_loss(student, teacher, beta=beta, reduction="none").mean(1)  # (B, h, w)
    return (cos_weight * (1.0 - cos) + smooth_l1_weight * sl1).flatten(1).mean(1)


def mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B, ...) pairs -> (B,): squared error averaged over every value of a sample (the loss on
    standardised targets, where every dimension has unit variance)."""
    return (student - teacher).square().flatten(1).mean(1)


@torch.no_grad()
def feature_smooth_l1(student: torch.Tensor, teacher: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """(B,) the magnitude part of the feature loss: SmoothL1(beta) averaged over channels and tokens."""
    return F.smooth_l1_loss(student.float(), teacher.float(), beta=beta, reduction="none").flatten(1).mean(1)


@torch.no_grad()
def summary_fidelity(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B,) cosine similarity of summaries."""
    return F.cosine_similarity(student.float(), teacher.float(), dim=1, eps=1e-6)


@torch.no_grad()
def feature_fidelity(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """(B,) mean over tokens of the per-token cosine similarity."""
    return F.cosine_similarity(student.float(), teacher.float(), dim=1, eps=1e-6).flatten(1).mean(1)
