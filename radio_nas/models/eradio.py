"""E-RADIO: the efficient hybrid CNN-Transformer student of AM-RADIO.

Paper: "AM-RADIO: Agglomerative Vision Foundation Model -- Reduce All Domains Into One",
Ranzinger, Heinrich, Kautz, Molchanov (CVPR 2024), supplementary §A.
Reference code: NVlabs/RADIO ``radio/eradio_model.py`` (its v2 options are expressible here).

Layout (strides 4/8/16/32, widths C/2C/4C/8C)::

    stem (2x conv3x3 s2) -> C2f stage -> down -> C2f stage -> down
        -> MRA transformer stage (stride 16) -> down -> transformer stage (stride 32)
        -> fusion of stages 3 and 4 -> stride-16 features; summary = mean of those tokens

A transformer stage's pattern of subsample ratios is applied in one of two ways (``depth_counts``):
``units`` (the published code's counting: ``depth`` multi-resolution-attention units, each running
one block per ratio, so ``(2, 1)`` doubles the blocks) or ``layers`` (AM-RADIO supplementary §A's wording: ``depth``
attention blocks, block i using ratio ``pattern[i % len(pattern)]``, so patterns compare at equal
depth). Pattern ``(2, 1)`` interleaves a 2x-subsampled block with a full-resolution one (AM-RADIO supplementary §A's
FasterViT-2 setting). A block with
ratio r > 1 subsamples (strided conv k=r, s=r), attends in windows, and upsamples back
(transposed conv k=r, s=r) before merging with its input.

Usage::

    from radio_nas.models import build_model
    model = build_model("t", window_sizes=(7, 7))
    summary, features = model(torch.randn(2, 3, 224, 224))   # (2, 320), (2, 320, 14, 14)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from radio_nas._config import Config, ConfigError, coerce
from radio_nas.models.deploy import fuse_conv_bn
from radio_nas.models.layers import DropPath, LayerScale, Mlp, init_weights

PATCH_SIZE = 16  # stride of the output features
INPUT_MULTIPLE = 32  # stride of the deepest stage


class WindowPaddingWarning(UserWarning):
    """Pinned windows do not tile an attention map at this input size: it is padded and masked."""


@dataclasses.dataclass(frozen=True)
class ERadioConfig(Config):
    """Every architectural choice of an E-RADIO variant. Frozen, validated, hashable to ``id``.

    Defaults follow AM-RADIO supplementary §A (v1-like design); the published v2 choices are options
    (see the ``l-v2`` preset).
    """

    family: Literal["eradio"] = "eradio"
    width: int = 80
    """C: stage widths are C, 2C, 4C, 8C."""
    depths: tuple[int, int, int, int] = (1, 3, 4, 5)
    """C2f bottlenecks in stages 1-2; MRA units or attention blocks in stages 3-4 (``depth_counts``)."""
    depth_counts: Literal["units", "layers"] = "units"
    """How stages 3-4 count ``depths``: units = each of ``depth`` units runs one block per ratio of
    the pattern (the published code; reproduces its parameter counts); layers = ``depth`` blocks,
    block i using ratio ``pattern[i % len(pattern)]`` (patterns compare at equal depth)."""
    stem_width: int | None = None
    """Channels after the first stem conv; None means C/2."""
    head_dim: int = 32
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    drop_path: float = 0.0
    """Stochastic depth of the attention blocks (stages 3-4): the rate rises linearly from 0 at the
    first block to this at the last, as timm's ``drop_path_rate``; 0 = none (the reference's)."""
    layer_scale: float | None = None
    """Initial value of a learnable per-channel scale on each attention and MLP branch (timm's
    ``LayerScale``, e.g. 1e-5), or None for none (the reference's)."""
    window_sizes: tuple[int, int] | Literal["auto"] = "auto"
    """Attention window per transformer stage (3, 4), or ``auto``: chosen from the input size the
    model is built or run at (:meth:`windows_for`). A list pins them; maps they do not tile are
    padded (padded keys masked) and the model warns."""
    max_window: int = 16
    """Largest window ``auto`` may choose (the reference's ``max_window_size``)."""
    window_fit: Literal["pad_mask", "resize"] = "pad_mask"
    """How a transformer stage fits a map its windows do not tile: pad_mask = pad each block's map
    to a multiple of the window and mask the padded keys; resize = the reference's rule: resize the
    stage's map (nearest) up to a multiple of max(ratio) * window before its blocks and back after
    (what the published weights were trained with)."""
    mra_pattern: tuple[tuple[int, ...], tuple[int, ...]] = ((2, 1), (1,))
    """Subsample ratios per transformer stage (see ``depth_counts``); 1 = plain windowed attention."""
    pos_bias: Literal["swinv2", "none"] = "swinv2"
    """Swin-V2 continuous relative position bias (log-spaced coords -> MLP -> 16*sigmoid)."""
    cpb_hidden: int = 512
    pretrained_window: int | None = None
    """Window the position-bias coordinates are normalised by (divided by its size - 1), as the
    reference's ``pretrained_window_size``: the window the weights were trained at, so they give
    the same bias at any other window. None: the current window."""
    pre_conv: Literal["none", "dense", "depthwise"] = "none"
    """3x3 conv-BN residual before each ratio-1 block (v2: dense)."""
    mra_resample: Literal["conv", "pool"] = "conv"
    """conv: conv k=r s=r / transposed conv k=r s=r; pool: avg-pool + 1x1 conv-BN / nearest + 1x1 conv-BN."""
    mra_merge: Literal["residual", "half"] = "residual"
    """residual: input + branch for r > 1; half: 0.5*block + 0.5*input for every block (v2)."""
    fusion: Literal["deconv", "neck"] = "deconv"
    """deconv: stage 4 upsampled by a transposed conv and added to stage 3 (seed);
    neck: nearest upsample + depthwise 3x3 + BN + 1x1 per stage, summed (v2)."""
    output_dim: int | None = None
    """Width of the output features; None means 4C for deconv (no projection) and 8C for neck."""

    late_fields = ("drop_path", "layer_scale", "window_fit")  # added after ids were recorded

    def validate(self) -> None:
        if self.width <= 0:
            raise ConfigError(f"expected a positive integer, got {self.width}", key="width")
        for i, depth in enumerate(self.depths):
            if depth < 1:
                raise ConfigError(f"every depth must be >= 1, got {depth}", key=f"depths[{i}]")
        if self.stem_width is not None and self.stem_width <= 0:
            raise ConfigError(f"expected a positive integer, got {self.stem_width}", key="stem_width")
        if self.head_dim <= 0:
            raise ConfigError(f"expected a positive integer, got {self.head_dim}", key="head_dim")
        for stage, mult in ((3, 4), (4, 8)):
            if (self.width * mult) % self.head_dim:
                raise ConfigError(
                    f"stage {stage} width {mult}*{self.width}={self.width * mult} is not divisible by "
                    f"head_dim {self.head_dim}",
                    key="head_dim",
                )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"expected a positive number, got {self.mlp_ratio}", key="mlp_ratio")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"expected a rate in [0, 1), got {self.drop_path}", key="drop_path")
        if self.layer_scale is not None and self.layer_scale <= 0:
            raise ConfigError(f"expected a positive number or null, got {self.layer_scale}", key="layer_scale")
        if self.window_sizes != "auto":
            for i, ws in enumerate(self.window_sizes):
                if ws < 1:
                    raise ConfigError(f"window sizes must be >= 1, got {ws}", key=f"window_sizes[{i}]")
        if self.max_window < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.max_window}", key="max_window")
        if self.pretrained_window is not None and self.pretrained_window < 2:
            raise ConfigError(
                f"expected an integer >= 2 or null, got {self.pretrained_window}", key="pretrained_window"
            )
        for i, pattern in enumerate(self.mra_pattern):
            if not pattern:
                raise ConfigError(
                    "pattern is empty; expected a list of ratios >= 1 such as [2, 1]", key=f"mra_pattern[{i}]"
                )
            for r in pattern:
                if r < 1:
                    raise ConfigError(f"ratios must be integers >= 1, got {r}", key=f"mra_pattern[{i}]")
        if self.cpb_hidden <= 0:
            raise ConfigError(f"expected a positive integer, got {self.cpb_hidden}", key="cpb_hidden")
        if self.output_dim is not None and self.output_dim <= 0:
            raise ConfigError(f"expected a positive integer, got {self.output_dim}", key="output_dim")

    @property
    def widths(self) -> tuple[int, int, int, int]:
        c = self.width
        return (c, 2 * c, 4 * c, 8 * c)

    @classmethod
    def from_dict(cls, data: Any, *, key: str = "") -> ERadioConfig:
        # a pinned list is checked on its own first, so an error names the item (window_sizes[1])
        # rather than listing both arms of the list-or-"auto" union
        if isinstance(data, dict) and isinstance(data.get("window_sizes"), (list, tuple)):
            coerce(tuple[int, int], data["window_sizes"], key=f"{key}.window_sizes" if key else "window_sizes")
        return super().from_dict(data, key=key)

    def windows_for(self, height: int, width: int) -> tuple[int, int]:
        """Windows of stages 3 and 4 at input height x width: the pinned ones, or for ``auto`` the
        reference's rule per stage: the largest divisor of the smallest map side its blocks attend
        over (the stage's side over its largest ratio) that is <= ``max_window`` (224 -> 7, 7 with
        pattern [2, 1]; 512 -> 16, 16)."""
        if self.window_sizes != "auto":
            return self.window_sizes
        out = []
        for stage, stride in ((3, 16), (4, 32)):
            side = max(min(height, width) // stride // max(self.stage_ratios(stage)), 1)
            out.append(_largest_divisor(side, self.max_window))
        return out[0], out[1]

    def built_at(self, height: int, width: int) -> ERadioConfig:
        """This config with the windows its model takes at height x width pinned: ``auto`` and the
        windows it resolves to there build the same model, and now have one :attr:`id`."""
        return dataclasses.replace(self, window_sizes=self.windows_for(height, width))

    def window_padding(self, height: int, width: int) -> list[str]:
        """The attention maps the windows do not tile at height x width (padded and masked), as text;
        none with ``window_fit: resize`` (:meth:`window_resizing`)."""
        out: list[str] = []
        if self.window_fit != "pad_mask":
            return out
        for stage, stride, ws in zip((3, 4), (16, 32), self.windows_for(height, width)):
            for r in sorted(set(self.stage_ratios(stage))):
                h, w = height // stride // r, width // stride // r
                if h % ws or w % ws:
                    out.append(
                        f"stage {stage} ratio {r}: map {h}x{w} padded to "
                        f"{h + (-h) % ws}x{w + (-w) % ws} for window {ws}"
                    )
        return out

    def window_resizing(self, height: int, width: int) -> list[str]:
        """With ``window_fit: resize``, the stage maps resized at height x width (none with pad_mask), as text."""
        out: list[str] = []
        if self.window_fit != "resize":
            return out
        for stage, stride, ws in zip((3, 4), (16, 32), self.windows_for(height, width)):
            h, w = height // stride, width // stride
            multiple = max(self.stage_ratios(stage)) * ws
            fit = fitted_size(h, w, multiple)
            if fit != (h, w):
                out.append(
                    f"stage {stage}: map {h}x{w} resized (nearest) to {fit[0]}x{fit[1]}, a multiple of "
                    f"ratio {max(self.stage_ratios(stage))} x window {ws}, and back"
                )
        return out

    def stage_ratios(self, stage: int) -> tuple[int, ...]:
        """Subsample ratio of every attention block of transformer stage `stage` (3 or 4), in order."""
        depth, pattern = self.depths[stage - 1], self.mra_pattern[stage - 3]
        if self.depth_counts == "units":
            return tuple(r for _ in range(depth) for r in pattern)
        return tuple(pattern[i % len(pattern)] for i in range(depth))

    @property
    def feature_dim(self) -> int:
        if self.output_dim is not None:
            return self.output_dim
        return 4 * self.width if self.fusion == "deconv" else 8 * self.width

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ConfigError unless an input of this size can run through the model."""
        if height <= 0 or width <= 0 or height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ConfigError(
                f"{height}x{width} is not supported; both sides must be positive multiples of "
                f"{INPUT_MULTIPLE} (e.g. 224, 256x384)",
                key="resolution",
            )
        for i, (stride, pattern) in enumerate(zip((16, 32), self.mra_pattern)):
            h, w = height // stride, width // stride
            for r in pattern:
                if h % r or w % r:
                    raise ConfigError(
                        f"ratio {r} does not divide the stage-{i + 3} map {h}x{w} at input "
                        f"{height}x{width}; use ratios that divide it",
                        key=f"mra_pattern[{i}]",
                    )


PRESETS: dict[str, dict] = {
    "xt": {"width": 64, "depths": (1, 3, 4, 5)},
    "t": {"width": 80, "depths": (1, 3, 4, 5)},
    "s": {"width": 96, "depths": (3, 3, 5, 5)},
    "b": {"width": 128, "depths": (3, 3, 5, 5)},
    "l": {"width": 192, "depths": (3, 3, 5, 5), "head_dim": 96},
    # The published E-RADIO v2 ("eradio_large_fullres_ws16") options, for comparison.
    # Windows: auto up to 16 (the "ws16"), bias coordinates normalised by the trained window 16.
    "l-v2": {
        "width": 192,
        "depths": (3, 3, 5, 5),
        "stem_width": 64,
        "head_dim": 96,
        "max_window": 16,
        "pretrained_window": 16,
        "pre_conv": "dense",
        "mra_merge": "half",
        "fusion": "neck",
        "output_dim": 1536,
    },
}
"""AM-RADIO supplementary §A.2 presets: C = XT 64, T 80, S 96, B 128, L 192; depths [1,3,4,5] for XT/T,
else [3,3,5,5]."""


def optimal_window_size(height: int, width: int, max_window: int = 16) -> int:
    """Largest divisor of min(H, W)/32 that is <= max_window (224 -> 7, 256 -> 8, 512 -> 16)."""
    grid = min(height, width) // INPUT_MULTIPLE
    if grid < 1:
        raise ConfigError(f"{height}x{width} is smaller than {INPUT_MULTIPLE}", key="resolution")
    return _largest_divisor(grid, max_window)


def fitted_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The map size ``window_fit: resize`` runs a stage at: each side rounded up to `multiple`."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


# ---------------------------------------------------------------------------------------------
# Convolutional parts (stem, C2f, downsample)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> activation, 'same' padding."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.SiLU,
    ):
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_chs),
            act() if act is not None else nn.Identity(),
        )


class Stem(nn.Sequential):
    """Two 3x3 stride-2 conv-BN-ReLU: stride 4."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int):
        super().__init__(ConvBNAct(in_chs, mid_chs, 3, 2, act=nn.ReLU), ConvBNAct(mid_chs, out_chs, 3, 2, act=nn.ReLU))


class Bottleneck(nn.Module):
    """YOLOv8 bottleneck: two 3x3 conv-BN-SiLU with an identity shortcut."""

    def __init__(self, dim: int):
        super().__init__()
        self.cv1 = ConvBNAct(dim, dim, 3)
        self.cv2 = ConvBNAct(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    """YOLOv8 C2f: 1x1 to two halves, n bottlenecks chained on the newest half, concat all, 1x1."""

    def __init__(self, in_chs: int, out_chs: int, depth: int):
        super().__init__()
        self.hidden = out_chs // 2
        self.cv1 = ConvBNAct(in_chs, 2 * self.hidden, 1)
        self.m = nn.ModuleList(Bottleneck(self.hidden) for _ in range(depth))
        self.cv2 = ConvBNAct((2 + depth) * self.hidden, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = list(self.cv1(x).chunk(2, dim=1))
        for block in self.m:
            ys.append(block(ys[-1]))
        return self.cv2(torch.cat(ys, dim=1))


class Downsample(nn.Sequential):
    """3x3 stride-2 conv -> BN, doubling the width (no activation)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(nn.Conv2d(in_chs, out_chs, 3, 2, 1, bias=False), nn.BatchNorm2d(out_chs))


# ---------------------------------------------------------------------------------------------
# Windowed attention with multi-resolution subsampling


class ContinuousPositionBias(nn.Module):
    """Swin-V2 continuous relative position bias for one window: (heads, N, N), N = ws^2.

    In eval mode without autograd the bias is a constant of the weights, so it is cached; the cache
    is dropped by ``train()``, by loading a state dict, by a window change, and whenever an MLP
    weight changes in place (its version counter moves). A deployed model freezes it
    instead (:meth:`freeze`): one buffer, recomputed on a window change or a weight load, with no per-call check
    (the check reads ``data_ptr``, which ``torch.compile`` cannot trace)."""

    table: torch.Tensor
    index: torch.Tensor
    frozen: torch.Tensor | None

    def __init__(self, window_size: int, num_heads: int, hidden: int, pretrained_window: int | None = None):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_heads, bias=False))
        self.pretrained_window = pretrained_window
        self._cache: tuple[tuple[Any, ...], torch.Tensor] | None = None
        self.register_buffer("frozen", None, persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refreeze())
        self.set_window(window_size)

    def set_window(self, window_size: int) -> None:
        ws = self.window_size = window_size
        norm = (self.pretrained_window or ws) - 1
        rel = torch.arange(-(ws - 1), ws, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(rel, rel, indexing="ij"), dim=-1)  # (2ws-1, 2ws-1, 2)
        table = table / max(norm, 1) * 8
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)  # (N, N, 2)
        index = delta[..., 0] * (2 * ws - 1) + delta[..., 1]
        device = next(self.mlp.parameters()).device
        self.register_buffer("table", table.reshape(-1, 2).to(device), persistent=False)
        self.register_buffer("index", index.reshape(-1).to(device), persistent=False)
        self.num_tokens = ws * ws
        self._cache = None
        self._refreeze()

    def freeze(self) -> None:
        """Compute the bias once and return that buffer in eval mode from now on (deploy)."""
        with torch.no_grad():
            self.frozen = self._compute()

    def _refreeze(self) -> None:
        if getattr(self, "frozen", None) is not None:
            self.freeze()

    def forward(self) -> torch.Tensor:
        if self.frozen is not None and not self.training:
            return self.frozen
        if self.training or torch.is_grad_enabled():
            return self._compute()
        device = self.table.device
        key = (
            device,
            torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type),
            *((p.data_ptr(), p._version) for p in self.mlp.parameters()),
        )
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._compute())
        return self._cache[1]

    def _compute(self) -> torch.Tensor:
        bias = self.mlp(self.table)[self.index]  # (N*N, heads)
        bias = bias.view(self.num_tokens, self.num_tokens, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def train(self, mode: bool = True) -> ContinuousPositionBias:
        self._cache = None
        return super().train(mode)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._cache = None
        super()._load_from_state_dict(*args, **kwargs)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows via F.scaled_dot_product_attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        qkv_bias: bool = False,
        pos_bias: bool = True,
        cpb_hidden: int = 512,
        pretrained_window: int | None = None,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.pos_bias = (
            ContinuousPositionBias(window_size, num_heads, cpb_hidden, pretrained_window) if pos_bias else None
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*, N, C); mask: additive (B* or 1, 1, N, N) or None."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = None
        if self.pos_bias is not None:
            bias = self.pos_bias().unsqueeze(0).to(q.dtype)
        if mask is not None:
            bias = mask.to(q.dtype) if bias is None else bias + mask.to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ws -> (B * nW, ws*ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def _padding_mask(h: int, w: int, ws: int, device: torch.device) -> torch.Tensor:
    """Additive mask (nW, 1, N, N) hiding the padded keys of each window."""
    valid = torch.zeros(1, h + (-h) % ws, w + (-w) % ws, 1, device=device)
    valid[:, :h, :w] = 1
    keys = window_partition(valid, ws).squeeze(-1)  # (nW, N)
    return torch.zeros_like(keys).masked_fill(keys == 0, float("-inf"))[:, None, None, :]


class WindowTransformerBlock(nn.Module):
    """Pre-norm windowed MHSA + MLP on an NCHW map; maps not a multiple of the window are padded
    (padded keys masked out) and cropped back. Each branch: [layer scale] -> [drop path] -> residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        pos_bias: bool = True,
        cpb_hidden: int = 512,
        pretrained_window: int | None = None,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
    ):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, pos_bias, cpb_hidden, pretrained_window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=False)
        # Identity when off: no tensors, so state-dict names stay those of the published layout
        self.ls1: nn.Module = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.ls2: nn.Module = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def set_window(self, window_size: int) -> None:
        if window_size != self.window_size:
            self.window_size = window_size
            if self.attn.pos_bias is not None:
                self.attn.pos_bias.set_window(window_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _c, h, w = x.shape
        ws = self.window_size
        x = x.permute(0, 2, 3, 1)  # NHWC
        shortcut = x
        x = self.norm1(x)
        pad_h, pad_w = (-h) % ws, (-w) % ws
        mask = None
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            mask = _padding_mask(h, w, ws, x.device).repeat(b, 1, 1, 1)
        windows = self.attn(window_partition(x, ws), mask)
        x = window_reverse(windows, ws, h + pad_h, w + pad_w)[:, :h, :w]
        x = shortcut + self.drop_path(self.ls1(x))
        x = x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
        return x.permute(0, 3, 1, 2)


class MRABlock(nn.Module):
    """One multi-resolution attention block: [pre-conv] -> subsample(r) -> windowed attention ->
    upsample(r) -> merge with the input. r = 1 is plain windowed attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        ratio: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        pos_bias: bool = True,
        cpb_hidden: int = 512,
        pre_conv: str = "none",
        resample: str = "conv",
        merge: str = "residual",
        pretrained_window: int | None = None,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
    ):
        super().__init__()
        self.ratio, self.merge = ratio, merge
        self.pre_conv = None
        if ratio == 1 and pre_conv != "none":
            self.pre_conv = ConvBNAct(dim, dim, 3, groups=dim if pre_conv == "depthwise" else 1, act=None)
        self.subsample: nn.Module = nn.Identity()
        self.upsample: nn.Module = nn.Identity()
        if ratio > 1:
            if resample == "conv":
                self.subsample = nn.Conv2d(dim, dim, ratio, ratio)
                self.upsample = nn.ConvTranspose2d(dim, dim, ratio, ratio)
            else:
                self.subsample = nn.Sequential(nn.AvgPool2d(ratio), ConvBNAct(dim, dim, 1, act=None))
                self.upsample = nn.Sequential(
                    nn.Upsample(scale_factor=ratio, mode="nearest"), ConvBNAct(dim, dim, 1, act=None)
                )
        self.block = WindowTransformerBlock(
            dim,
            num_heads,
            window_size,
            mlp_ratio,
            qkv_bias,
            pos_bias,
            cpb_hidden,
            pretrained_window,
            drop_path=drop_path,
            layer_scale=layer_scale,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        if self.pre_conv is not None:
            x = x + self.pre_conv(x)
        x = self.upsample(self.block(self.subsample(x)))
        if self.merge == "half":
            return 0.5 * x + 0.5 * skip
        return skip + x if self.ratio > 1 else x


class ConvStage(nn.Module):
    """[Downsample] -> C2f."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, downsample: bool):
        super().__init__()
        self.downsample = Downsample(in_chs, out_chs) if downsample else nn.Identity()
        self.blocks = C2f(out_chs, out_chs, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class AttentionStage(nn.Module):
    """Downsample -> one MRA block per ratio in `ratios` (see ``ERadioConfig.stage_ratios``).

    With ``window_fit: resize`` a map that max(ratio) x window does not tile is resized (nearest) up
    to the next multiple before the blocks and back after, as the reference's ``ERADIOLayer``;
    with ``pad_mask`` each block pads and masks instead. `drop_path`: one rate per block."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        ratios: tuple[int, ...],
        window_size: int,
        cfg: ERadioConfig,
        drop_path: tuple[float, ...] = (),
    ):
        super().__init__()
        self.window_size, self.max_ratio, self.window_fit = window_size, max(ratios), cfg.window_fit
        rates = drop_path or (0.0,) * len(ratios)
        self.downsample = Downsample(in_chs, out_chs)
        self.blocks = nn.Sequential(
            *(
                MRABlock(
                    out_chs,
                    out_chs // cfg.head_dim,
                    window_size,
                    ratio,
                    mlp_ratio=cfg.mlp_ratio,
                    qkv_bias=cfg.qkv_bias,
                    pos_bias=cfg.pos_bias == "swinv2",
                    cpb_hidden=cfg.cpb_hidden,
                    pre_conv=cfg.pre_conv,
                    resample=cfg.mra_resample,
                    merge=cfg.mra_merge,
                    pretrained_window=cfg.pretrained_window,
                    drop_path=rate,
                    layer_scale=cfg.layer_scale,
                )
                for ratio, rate in zip(ratios, rates, strict=True)
            )
        )

    def set_window(self, window_size: int) -> None:
        self.window_size = window_size
        for block in self.blocks:
            cast(MRABlock, block).block.set_window(window_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        h, w = x.shape[-2:]
        fit = fitted_size(h, w, self.max_ratio * self.window_size)
        if self.window_fit != "resize" or fit == (h, w):
            return self.blocks(x)
        x = self.blocks(F.interpolate(x, size=fit, mode="nearest"))
        return F.interpolate(x, size=(h, w), mode="nearest")


# ---------------------------------------------------------------------------------------------
# Fusion to stride-16 features


class DeconvFusion(nn.Module):
    """Seed: stage 4 upsampled 2x by a transposed conv to 4C and added to stage 3 [+ 1x1 proj]."""

    def __init__(self, c3: int, c4: int, out_dim: int | None):
        super().__init__()
        self.up = nn.ConvTranspose2d(c4, c3, 2, 2)
        self.proj = nn.Conv2d(c3, out_dim, 1) if out_dim is not None else nn.Identity()

    def forward(self, x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        return self.proj(x3 + self.up(x4))


class NeckFusion(nn.Module):
    """v2 "HiResNeck": per stage nearest upsample -> depthwise 3x3 -> BN -> 1x1 to D; summed."""

    def __init__(self, c3: int, c4: int, out_dim: int):
        super().__init__()
        self.proj = nn.ModuleList(self._branch(c, out_dim, scale) for c, scale in ((c3, 1), (c4, 2)))

    @staticmethod
    def _branch(chs: int, out_dim: int, scale: int) -> nn.Sequential:
        up = nn.Upsample(scale_factor=scale, mode="nearest") if scale > 1 else nn.Identity()
        return nn.Sequential(
            up, nn.Conv2d(chs, chs, 3, padding=1, groups=chs), nn.BatchNorm2d(chs), nn.Conv2d(chs, out_dim, 1)
        )

    def forward(self, x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        return self.proj[0](x3) + self.proj[1](x4)


class ERadio(nn.Module):
    """E-RADIO backbone. ``forward`` returns (summary (B, D), features (B, D, H/16, W/16))."""

    patch_size = PATCH_SIZE

    def __init__(self, cfg: ERadioConfig, in_chans: int = 3, input_size: tuple[int, int] | None = None):
        super().__init__()
        self.cfg = cfg
        if input_size is not None:
            cfg.check_input_size(*input_size)
        self.input_size = input_size
        self._warned: set[tuple[int, int]] = set()
        self._windows = ws3, ws4 = cfg.windows_for(*(input_size or (224, 224)))  # supplementary §A input until told
        c1, c2, c3, c4 = cfg.widths
        n3, n = len(cfg.stage_ratios(3)), len(cfg.stage_ratios(3)) + len(cfg.stage_ratios(4))
        rates = tuple(cfg.drop_path * i / max(n - 1, 1) for i in range(n))  # timm: linspace(0, rate, blocks)
        self.stem = Stem(in_chans, cfg.stem_width or c1 // 2, c1)
        self.stages = nn.ModuleList(
            [
                ConvStage(c1, c1, cfg.depths[0], downsample=False),
                ConvStage(c1, c2, cfg.depths[1], downsample=True),
                AttentionStage(c2, c3, cfg.stage_ratios(3), ws3, cfg, rates[:n3]),
                AttentionStage(c3, c4, cfg.stage_ratios(4), ws4, cfg, rates[n3:]),
            ]
        )
        if cfg.fusion == "deconv":
            self.fusion: nn.Module = DeconvFusion(c3, c4, cfg.output_dim)
        else:
            self.fusion = NeckFusion(c3, c4, cfg.feature_dim)
        self.summary_dim = self.feature_dim = cfg.feature_dim
        self.apply(init_weights)
        if input_size is not None:
            self._warn_padding(*input_size)

    deployed = False
    """True after :meth:`switch_to_deploy`: inference only."""

    def switch_to_deploy(self) -> ERadio:
        """Fold every BatchNorm into its convolution, in place, and go to eval mode for good
        and freeze the position bias into a buffer. Outputs match eval mode to rounding."""
        self.eval()
        fuse_conv_bn(self)
        for module in self.modules():
            if isinstance(module, ContinuousPositionBias):
                module.freeze()
        self.deployed = True
        return self

    def train(self, mode: bool = True) -> ERadio:
        if mode and self.deployed:
            raise RuntimeError(
                "this E-RADIO was switched to deploy (BatchNorm folded): inference only; build a fresh model to train"
            )
        return super().train(mode)

    @property
    def window_sizes(self) -> tuple[int, int]:
        """The windows stages 3 and 4 use now."""
        return self._windows

    def set_input_size(self, height: int, width: int) -> None:
        """Prepare for inputs of height x width: ``auto`` windows follow it (forward does this by
        itself when the size changes; call it before tracing or timing)."""
        self.cfg.check_input_size(height, width)
        self._windows = self.cfg.windows_for(height, width)
        for stage, ws in zip(self.stages[2:], self._windows):
            cast(AttentionStage, stage).set_window(ws)
        self.input_size = (int(height), int(width))
        self._warn_padding(height, width)

    def _warn_padding(self, height: int, width: int) -> None:
        padded = self.cfg.window_padding(height, width)
        if padded and self.cfg.window_sizes != "auto" and (height, width) not in self._warned:
            self._warned.add((height, width))
            warnings.warn(
                f"window_sizes {list(self.cfg.window_sizes)} do not tile a {height}x{width} "
                f"input ({'; '.join(padded)}); set window_sizes: auto to choose them from "
                "the resolution",
                WindowPaddingWarning,
                stacklevel=3,
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stride-16 spatial features (B, D, H/16, W/16)."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if size != self.input_size:
            self.set_input_size(*size)
        x = self.stem(x)
        x = self.stages[0](x)
        x = self.stages[1](x)
        x3 = self.stages[2](x)
        x4 = self.stages[3](x3)
        return self.fusion(x3, x4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.forward_features(x)
        return features.mean(dim=(2, 3)), features
