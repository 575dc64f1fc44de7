"""ViT students with resolution-flexible position embeddings and ViTDet window/global augmentation.

Papers: "AM-RADIO: Agglomerative Vision Foundation Model -- Reduce All Domains Into One",
Ranzinger et al. (CVPR 2024): RADIO's own backbone is a plain ViT with CPE position embeddings
(main paper §3) trained with the ViTDet augmentation of supplementary §C; ViTDet is
"Exploring Plain Vision Transformer Backbones for Object Detection", Li et al. (ECCV 2022).
Reference code: NVlabs/RADIO ``radio/vit_patch_generator.py`` (CPE) and ``radio/vitdet.py``.

Layout::

    patch embed (conv p x p, stride p) + position embedding (max grid -> input grid)
        -> [summary tokens; patch tokens] -> depth x pre-norm block (MHSA + MLP) -> LayerNorm
        -> summary: summary tokens flattened (or mean of patch tokens if there are none)
        -> features: patch tokens as a (B, D, H/p, W/p) map

Position embeddings are learned on a ``max_grid x max_grid`` grid. ``pos_embed="interpolate"``
(RADIO's CPE at inference) resizes that grid bilinearly to ``max(h, w)`` square and crops the
top-left ``h x w``, so both axes keep the same scale at any aspect ratio; ``"crop"`` takes the
top-left ``h x w`` with no resampling. ``cpe_augment`` adds RADIO's training-time CPE
augmentation (a random crop of the embedding grid per sample, scale in [0.1, 1] of the area,
aspect ratio in [3/4, 4/3], resampled to the input grid) drawn from the global torch RNG.

ViTDet augmentation (``vitdet_window_sizes`` non-empty; only while ``model.training``):

- once per forward a window size is drawn uniformly from the listed sizes that divide *both*
  sides of the patch grid (no padding). If none divides the grid, or the drawn window covers the
  whole grid (a single window is global attention), that step runs fully global.
- patch tokens are reordered so each window is a contiguous chunk (:func:`window_order`);
  a windowed block folds the windows into the batch (``(B, T, C) -> (B * nW, ws*ws, C)``).
- block ``i`` is windowed when ``i % (num_windowed + 1) < num_windowed``; the others are global,
  and the last block is always global (:func:`vitdet_schedule`).
- summary tokens stay out of the windows: windowed blocks pass them through unchanged and they
  rejoin every global block (as NVlabs/RADIO ``vitdet.py`` does).
- patch tokens are put back in input order after the last block.

The draw uses ``model.window_generator`` (a ``torch.Generator``) when set, else the global torch
RNG, so ``torch.manual_seed`` makes it reproducible; ``model.last_window_size`` records the size
used by the latest forward (``None`` = global).

Note: the listing in AM-RADIO supplementary §C folds with ``reshape(B * window_size**2, -1, C)``, which groups
``T / ws^2`` consecutive tokens; that equals a window only when there are ``ws^2`` windows.
Here the fold is ``reshape(B * num_windows, ws * ws, C)`` (as in the RADIO code).

Usage::

    from radio_nas.models import build_model
    model = build_model("vit-t", vitdet_window_sizes=(2, 7), vitdet_num_windowed=2)
    summary, features = model(torch.randn(2, 3, 224, 224))   # (2, 192), (2, 192, 14, 14)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from radio_nas._config import Config, ConfigError
from radio_nas.models.layers import Mlp, init_weights


@dataclasses.dataclass(frozen=True)
class ViTConfig(Config):
    """Every architectural choice of a ViT student. Frozen, validated, hashable to ``id``."""

    family: Literal["vit"] = "vit"
    patch_size: int = 16
    """Patch side in pixels; also the stride of the output features."""
    width: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_summary_tokens: int = 1
    """Summary (CLS) tokens, e.g. one per teacher; the summary output concatenates them.
    0 means the summary is the mean of the patch tokens."""
    max_grid: int = 32
    """Side of the learned position-embedding grid, in patches (the largest input grid)."""
    pos_embed: Literal["interpolate", "crop"] = "interpolate"
    cpe_augment: bool = False
    """While training, sample a random crop of the position-embedding grid per image (RADIO CPE)."""
    vitdet_window_sizes: tuple[int, ...] = ()
    """Window sides (in patches) drawn from per training step; empty = ViTDet augmentation off."""
    vitdet_num_windowed: int = 2
    """Windowed blocks before each global one (period = vitdet_num_windowed + 1)."""

    def validate(self) -> None:
        for name in ("patch_size", "width", "depth", "num_heads", "max_grid", "vitdet_num_windowed"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"expected a positive integer, got {value}", key=name)
        if self.width % self.num_heads:
            raise ConfigError(f"width {self.width} is not divisible by num_heads {self.num_heads}", key="num_heads")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"expected a positive number, got {self.mlp_ratio}", key="mlp_ratio")
        if self.num_summary_tokens < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.num_summary_tokens}", key="num_summary_tokens")
        for i, ws in enumerate(self.vitdet_window_sizes):
            if not 1 <= ws <= self.max_grid:
                raise ConfigError(
                    f"window sizes must be between 1 and max_grid ({self.max_grid}), got {ws}",
                    key=f"vitdet_window_sizes[{i}]",
                )

    @property
    def feature_dim(self) -> int:
        return self.width

    @property
    def summary_dim(self) -> int:
        return self.width * max(self.num_summary_tokens, 1)

    @property
    def max_resolution(self) -> int:
        return self.max_grid * self.patch_size

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ConfigError unless an input of this size can run through the model."""
        p, top = self.patch_size, self.max_resolution
        if height <= 0 or width <= 0 or height % p or width % p:
            raise ConfigError(
                f"{height}x{width} is not supported; both sides must be positive multiples of the patch size {p}",
                key="resolution",
            )
        if height > top or width > top:
            raise ConfigError(
                f"{height}x{width} exceeds the position-embedding grid: sides must be "
                f"<= max_grid*patch_size = {top}; raise max_grid",
                key="resolution",
            )


PRESETS: dict[str, dict] = {
    "vit-t": {"width": 192, "depth": 12, "num_heads": 3},
    "vit-s": {"width": 384, "depth": 12, "num_heads": 6},
    "vit-b": {"width": 768, "depth": 12, "num_heads": 12},
    "vit-l": {"width": 1024, "depth": 24, "num_heads": 16},
    # RADIO v1's backbone: ViT-H/14 (AM-RADIO supplementary §D, Table 9).
    "vit-h": {"patch_size": 14, "width": 1280, "depth": 32, "num_heads": 16},
}
"""DeiT/ViT widths, depths and heads (Touvron et al. 2021; Dosovitskiy et al. 2021)."""


# ---------------------------------------------------------------------------------------------
# ViTDet helpers: window order, block schedule, window-size draw


def window_order(grid: tuple[int, int], window_size: int, device: torch.device | None = None) -> torch.Tensor:
    """Permutation of the ``h*w`` row-major patch indices that makes each window contiguous:
    ``order[k * ws*ws : (k+1) * ws*ws]`` are the patches of window k (windows row-major)."""
    h, w = grid
    ws = window_size
    if ws < 1 or h % ws or w % ws:
        raise ValueError(f"window {ws} does not divide the grid {h}x{w}")
    idx = torch.arange(h * w, device=device)
    return rearrange(idx, "(wy y wx x) -> (wy wx y x)", wy=h // ws, y=ws, wx=w // ws, x=ws)


def reorder_patches(
    patches: torch.Tensor, grid: tuple[int, int], window_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, h*w, C) in row-major order -> (windows contiguous, the order used)."""
    order = window_order(grid, window_size, patches.device)
    return patches.index_select(1, order), order


def restore_patch_order(patches: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`reorder_patches`: scatter tokens back to row-major input order."""
    index = order.view(1, -1, 1).expand_as(patches)
    return torch.empty_like(patches).scatter(1, index, patches)


def vitdet_schedule(depth: int, num_windowed: int) -> tuple[bool, ...]:
    """Per block, True if it attends within windows: ``num_windowed`` windowed blocks, then one
    global, repeated; the last block is always global."""
    period = num_windowed + 1
    return tuple(i < depth - 1 and i % period < num_windowed for i in range(depth))


def valid_window_sizes(sizes: tuple[int, ...], grid: tuple[int, int]) -> tuple[int, ...]:
    """The listed window sizes that tile the grid exactly (divide both sides)."""
    return tuple(ws for ws in sizes if grid[0] % ws == 0 and grid[1] % ws == 0)


def sample_window_size(
    sizes: tuple[int, ...], grid: tuple[int, int], generator: torch.Generator | None = None
) -> int | None:
    """Draw uniformly among :func:`valid_window_sizes`; None (global attention) if none is valid
    or the drawn window covers the whole grid."""
    valid = valid_window_sizes(sizes, grid)
    if not valid:
        return None
    ws = valid[int(torch.randint(len(valid), (1,), generator=generator))]
    return None if (ws, ws) == tuple(grid) else ws


# ---------------------------------------------------------------------------------------------
# Modules


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> (B, h*w, D) tokens, row-major."""

    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PosEmbed(nn.Module):
    """Learned position embedding on a max grid, fitted to any input grid (see module docstring)."""

    def __init__(self, max_grid: int, dim: int, mode: str = "interpolate", augment: bool = False):
        super().__init__()
        self.max_grid, self.mode, self.augment = max_grid, mode, augment
        self.weight = nn.Parameter(torch.zeros(1, dim, max_grid, max_grid))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, batch: int, grid: tuple[int, int]) -> torch.Tensor:
        """(1 or B, h*w, D) embeddings for a row-major h x w patch grid."""
        h, w = grid
        if self.training and self.augment:
            pos = self._random_crop(batch, grid)
        elif (h, w) == (self.max_grid, self.max_grid):
            pos = self.weight
        elif self.mode == "crop":
            pos = self.weight[:, :, :h, :w]
        else:
            side = max(h, w)
            pos = self.weight
            if side != self.max_grid:
                pos = F.interpolate(pos, size=(side, side), mode="bilinear", align_corners=True)
            pos = pos[:, :, :h, :w]
        return pos.flatten(2).transpose(1, 2)

    def _random_crop(self, batch: int, grid: tuple[int, int]) -> torch.Tensor:
        # RADIO CPE training: per image a crop of 10-100% of the area, aspect ratio 3/4..4/3.
        h, w = grid
        dev = self.weight.device
        min_scale = math.sqrt(0.1)
        scale = torch.rand(batch, 1, 1, device=dev) * (1 - min_scale) + min_scale
        log_aspect = math.log(4 / 3)
        aspect = torch.exp((torch.rand(batch, 1, 1, device=dev) * 2 - 1) * log_aspect)
        scale_xy = torch.stack([scale * aspect, scale / aspect], dim=-1).clamp(0, 1)  # (B,1,1,2)
        offset = torch.rand(batch, 1, 1, 2, device=dev) * (1 - scale_xy)
        ys, xs = torch.linspace(0, 1, h, device=dev), torch.linspace(0, 1, w, device=dev)
        lin = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1,h,w,2) as (x,y)
        sample_grid = (lin * scale_xy + offset) * 2 - 1
        weight = self.weight.expand(batch, -1, -1, -1)
        return F.grid_sample(weight, sample_grid, mode="bilinear", align_corners=True)


class Attention(nn.Module):
    """Multi-head self-attention via F.scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block on (B, N, C): x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViT student. ``forward`` returns (summary (B, summary_dim), features (B, D, H/p, W/p))."""

    def __init__(self, cfg: ViTConfig, in_chans: int = 3):
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.patch_size
        self.summary_dim, self.feature_dim = cfg.summary_dim, cfg.feature_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, in_chans, cfg.width)
        self.pos_embed = PosEmbed(cfg.max_grid, cfg.width, cfg.pos_embed, cfg.cpe_augment)
        self.summary_tokens = nn.Parameter(torch.zeros(1, cfg.num_summary_tokens, cfg.width))
        nn.init.trunc_normal_(self.summary_tokens, std=0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.windowed = vitdet_schedule(cfg.depth, cfg.vitdet_num_windowed)
        self.window_generator: torch.Generator | None = None
        self.last_window_size: int | None = None
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor, window_size: int | Literal["auto", "global"] = "auto") -> torch.Tensor:
        """Normed tokens (B, S + h*w, D): S summary tokens, then patch tokens in row-major order.

        ``window_size``: "auto" draws a ViTDet window while training (if configured) and is
        global otherwise; "global" never windows; an int forces that window (must tile the grid).
        """
        h, w = x.shape[-2:]
        self.cfg.check_input_size(h, w)
        grid = (h // self.patch_size, w // self.patch_size)
        patches = self.patch_embed(x)
        patches = patches + self.pos_embed(patches.shape[0], grid)
        summary = self.summary_tokens.expand(patches.shape[0], -1, -1)
        ws = self._window_size(grid, window_size)
        self.last_window_size = ws
        if ws is None:
            tokens = torch.cat([summary, patches], dim=1)
            for block in self.blocks:
                tokens = block(tokens)
        else:
            tokens = self._vitdet_blocks(summary, patches, grid, ws)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.forward_features(x)
        s = self.cfg.num_summary_tokens
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        patches = tokens[:, s:]
        features = patches.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        summary = tokens[:, :s].flatten(1) if s else patches.mean(dim=1)
        return summary, features

    def _window_size(self, grid: tuple[int, int], request: int | str) -> int | None:
        if request == "global":
            return None
        if request == "auto":
            if not (self.training and self.cfg.vitdet_window_sizes):
                return None
            return sample_window_size(self.cfg.vitdet_window_sizes, grid, self.window_generator)
        if not isinstance(request, int) or request < 1 or grid[0] % request or grid[1] % request:
            raise ConfigError(
                f"window {request!r} does not tile the {grid[0]}x{grid[1]} patch grid", key="vitdet_window_sizes"
            )
        return request

    def _vitdet_blocks(
        self, summary: torch.Tensor, patches: torch.Tensor, grid: tuple[int, int], ws: int
    ) -> torch.Tensor:
        """Alternate windowed/global blocks on window-contiguous patches (module docstring)."""
        b, t, c = patches.shape
        patches, order = reorder_patches(patches, grid, ws)
        num_windows = t // (ws * ws)
        s = summary.shape[1]
        for block, windowed in zip(self.blocks, self.windowed):
            if windowed:  # windows folded into the batch; summary tokens wait for the next global
                patches = block(patches.reshape(b * num_windows, ws * ws, c)).reshape(b, t, c)
            else:
                tokens = block(torch.cat([summary, patches], dim=1))
                summary, patches = tokens[:, :s], tokens[:, s:]
        return torch.cat([summary, restore_patch_order(patches, order)], dim=1)


__all__ = [
    "PRESETS",
    "ViT",
    "ViTConfig",
    "reorder_patches",
    "restore_patch_order",
    "sample_window_size",
    "valid_window_sizes",
    "vitdet_schedule",
    "window_order",
]
