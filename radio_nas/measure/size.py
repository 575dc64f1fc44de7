"""How much memory a student would take, estimated before anything is allocated.

    from radio_nas.measure.size import estimate_size, check_fits
    estimate_size(cfg, (224, 224), batch_size=8).total_bytes
    check_fits(cfg, (224, 224), batch_size=8, training=True, what="the trial")   # ConfigError if not

Parameters are counted exactly on PyTorch's ``meta`` device (no memory) for the config at small
widths and depths, then extended to the real ones: a model's parameter count is a quadratic in its
width and affine in each stage's depth, so a width of 10^9 is counted without building it. Buffers
(E-RADIO's position-bias tables, N^2 per window of N tokens) and activations are counted from the
shapes the forward makes. The activation figure is a rough upper guess (a few live maps per stage,
the attention matrix of a window); it serves to refuse sizes no machine holds, not to plan memory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from fractions import Fraction
from typing import Any

from radio_nas._config import Config, ConfigError

_LIVE_MAPS = 8
"""Feature maps of a stage's width alive at once in a forward (MLP expansion, q/k/v, residuals)."""
_DEPTH_DIRECT = 2
"""Stages up to this depth are built as they are; deeper ones are extended linearly."""
_WIDTH_POINTS = 3


@dataclasses.dataclass(frozen=True)
class SizeEstimate:
    params: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes + self.activation_bytes

    def describe(self) -> str:
        parts = [f"{self.params:.3g} parameters ({format_bytes(self.param_bytes)})"]
        if self.buffer_bytes:
            parts.append(f"position-bias tables {format_bytes(self.buffer_bytes)}")
        if self.activation_bytes:
            parts.append(f"activations {format_bytes(self.activation_bytes)}")
        return f"about {format_bytes(self.total_bytes)}: " + ", ".join(parts)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.3g} {unit}" if n < 1e6 else f"{n:.2e} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def machine_memory() -> int | None:
    """Physical memory of this machine in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate_size(
    cfg: Config, resolution: tuple[int, int] | None = None, batch_size: int = 1, *, training: bool = False
) -> SizeEstimate:
    """Parameters, buffers and (with `resolution`) activations of the model of `cfg`, in bytes
    (fp32). `training` counts gradients and Adam's two moments and keeps every block's activations
    for the backward pass."""
    spec = cfg.to_dict()
    params = _param_count(json.dumps(spec, sort_keys=True, default=list))
    family = spec.get("family", "eradio")
    buffers = acts = 0
    if family == "vit":
        if resolution is not None:
            acts = _vit_activations(spec, resolution, batch_size, training)
    else:
        buffers, acts = _eradio_extra(cfg, spec, resolution, batch_size, training)
    return SizeEstimate(params, params * 4 * (4 if training else 1), buffers, acts)


def check_fits(
    cfg: Config,
    resolution: tuple[int, int] | None = None,
    batch_size: int = 1,
    *,
    training: bool = False,
    what: str = "this model",
    key: str | None = None,
    file: Any = None,
    limit: int | None = None,
) -> SizeEstimate:
    """ConfigError (one line, with the estimate) when `cfg` at `resolution` cannot fit this
    machine's memory (or `limit` bytes); returns the estimate otherwise."""
    est = estimate_size(cfg, resolution, batch_size, training=training)
    have = limit if limit is not None else machine_memory()
    if have is not None and est.total_bytes > have:
        at = f" at {resolution[0]}x{resolution[1]}, batch {batch_size}" if resolution is not None else ""
        raise ConfigError(
            f"{what}{at} would need {est.describe()}; this machine has {format_bytes(have)}", key=key, file=file
        )
    return est


# -- parameters --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _param_count(spec_json: str) -> int:
    spec = json.loads(spec_json)
    family = spec.get("family", "eradio")
    unit = 2 * int(spec.get("head_dim", 1)) if family != "vit" else int(spec.get("num_heads", 1))
    width = int(spec["width"])
    if width <= _WIDTH_POINTS * unit:
        return _depth_extended(spec)
    # quadratic in the width: exact through three widths that keep every divisibility rule
    xs = [Fraction(k) for k in range(1, _WIDTH_POINTS + 1)]
    ys = [_depth_extended({**spec, "width": int(k) * unit}) for k in xs]
    x = Fraction(width, unit)
    total = Fraction(0)
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        term = Fraction(yi)
        for j, xj in enumerate(xs):
            if j != i:
                term *= (x - xj) / (xi - xj)
        total += term
    return max(int(round(total)), 0)


def _depth_extended(spec: dict[str, Any]) -> int:
    """Parameters with deep stages extended linearly from depths 1 and 2 (each block of a stage
    has the same parameters)."""
    key = "depth" if spec.get("family") == "vit" else "depths"
    depths = [spec[key]] if key == "depth" else list(spec[key])
    capped = [min(d, _DEPTH_DIRECT) for d in depths]

    def with_depths(ds: list[int]) -> dict[str, Any]:
        return {**spec, key: ds[0] if key == "depth" else ds}

    base = _meta_count(with_depths(capped))
    extra = 0
    for s, (d, c) in enumerate(zip(depths, capped)):
        if d > c:
            one_less = [*capped]
            one_less[s] = c - 1
            per_block = base - _meta_count(with_depths(one_less))
            extra += (d - c) * per_block
    return base + extra


def _meta_count(spec: dict[str, Any]) -> int:
    """Exact parameter count of a (small) config, built on the meta device: nothing allocated."""
    import torch

    from radio_nas.models import build_model

    small = dict(spec)
    if small.get("family", "eradio") != "vit":
        small["window_sizes"] = [2, 2]  # windows shape buffers only, never parameters
    with torch.device("meta"):
        model = build_model(small)
    return sum(p.numel() for p in model.parameters())


# -- buffers and activations -------------------------------------------------------------------------


def _eradio_extra(
    cfg: Any, spec: dict[str, Any], resolution: tuple[int, int] | None, batch: int, training: bool
) -> tuple[int, int]:
    """(position-bias buffer bytes, activation bytes) of an E-RADIO config."""
    h, w = resolution or (224, 224)
    windows = cfg.windows_for(h, w)
    widths = cfg.widths
    head_dim = int(spec["head_dim"])
    blocks = [cfg.depths[0], cfg.depths[1], len(cfg.stage_ratios(3)), len(cfg.stage_ratios(4))]
    buffers = 0
    for stage, ws in zip((2, 3), windows):
        n = ws * ws
        heads = widths[stage] // head_dim
        per_block = n * n * 8 + (2 * ws - 1) ** 2 * 2 * 4  # index (int64) + coordinate table
        per_block += heads * n * n * 4  # the bias itself, cached per block
        buffers += blocks[stage] * per_block
    if resolution is None:
        return buffers, 0
    acts, attn = 0, 0
    for stage, (stride, width) in enumerate(zip((4, 8, 16, 32), widths)):
        mh, mw = math.ceil(h / stride), math.ceil(w / stride)
        if stage >= 2:
            ws = windows[stage - 2]
            mh, mw = math.ceil(mh / ws) * ws, math.ceil(mw / ws) * ws  # padded to whole windows
            heads = width // head_dim
            attn = max(attn, batch * mh * mw * heads * ws * ws * 4)  # one window batch's scores
        per_map = batch * width * mh * mw * 4
        acts += per_map * _LIVE_MAPS * (blocks[stage] if training else 1)
    acts += batch * widths[0] * math.ceil(h / 2) * math.ceil(w / 2) * 4  # the stem's stride-2 map
    return buffers, acts + attn


def _vit_activations(spec: dict[str, Any], resolution: tuple[int, int], batch: int, training: bool) -> int:
    p = int(spec["patch_size"])
    tokens = math.ceil(resolution[0] / p) * math.ceil(resolution[1] / p) + int(spec.get("num_summary_tokens", 1))
    width, heads, depth = int(spec["width"]), int(spec["num_heads"]), int(spec["depth"])
    per_block = batch * tokens * width * 4 * _LIVE_MAPS
    attn = batch * heads * tokens * tokens * 4
    return per_block * (depth if training else 1) + attn
