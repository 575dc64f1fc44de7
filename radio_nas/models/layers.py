"""Layers and initialisation shared by the student families."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear (items 0 and 2, so state-dict names stay ``mlp.0`` / ``mlp.2``)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__(nn.Linear(dim, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, dim, bias=bias))


class DropPath(nn.Module):
    """Stochastic depth (timm's ``DropPath``): in training, zero the residual branch of each sample
    with probability `rate` and scale the kept ones by 1 / (1 - rate); the identity in eval mode."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


class LayerScale(nn.Module):
    """Per-channel learnable scale of a residual branch (timm's ``LayerScale``, CaiT): x * gamma,
    gamma initialised to `init` for every channel; channels last."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def init_weights(module: nn.Module) -> None:
    """timm-style: Linear weights truncated normal (std 0.02), biases zero; for ``model.apply``."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
