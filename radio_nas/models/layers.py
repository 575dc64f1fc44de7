"""Layers and initialisation shared by the student families."""

from __future__ import annotations

from torch import nn


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear (items 0 and 2, so state-dict names stay ``mlp.0`` / ``mlp.2``)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__(nn.Linear(dim, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, dim, bias=bias))


def init_weights(module: nn.Module) -> None:
    """timm-style: Linear weights truncated normal (std 0.02), biases zero; for ``model.apply``."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
