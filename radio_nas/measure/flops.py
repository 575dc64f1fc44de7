"""Multiply-accumulate counts with fvcore, made strict.

fvcore traces the model and counts MACs per aten op (it calls them "flops"); ops it has no handle
for are skipped with only a warning, which silently undercounts attention
(``aten::scaled_dot_product_attention``). Here every op the trace contains must either have a
handle or be a known zero-cost op (elementwise, by the usual MAC convention); anything else raises.

    count_gmacs("t", resolution=(224, 224))
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape
from torch import nn

from radio_nas._config import ConfigError

# Elementwise and bookkeeping ops: 0 MACs by convention (fvcore already ignores its own list).
ZERO_COST_OPS = frozenset(
    f"aten::{op}"
    for op in (
        "add",
        "add_",
        "sub",
        "rsub",
        "mul",
        "mul_",
        "div",
        "neg",
        "abs",
        "sign",
        "log2",
        "exp",
        "pow",
        "sigmoid",
        "gelu",
        "silu",
        "silu_",
        "hardswish",
        "softmax",
        "tanh",
        "mean",
        "sum",
        "repeat",
        "clone",
        "pad",
        "expand_as",
        "masked_fill_",
        "fill_",
        "scatter",
        "sqrt",
        "rsqrt",
        "erf",
        "numpy_T",
    )
)


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """q @ k^T and attn @ v: B*H*L*S*(E + Ev) MACs (the softmax and mask add are elementwise)."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    *batch, length, embed = q
    source, embed_v = k[-2], v[-1]
    n = 1
    for dim in batch:
        n *= dim
    return n * length * source * (embed + embed_v)


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    # one op per input element, as fvcore counts aten::adaptive_avg_pool2d
    "aten::avg_pool2d": elementwise_flop_counter(1, 0),
}


def flop_analysis(model: nn.Module, resolution: tuple[int, int], batch_size: int = 1) -> FlopCountAnalysis:
    """A strict fvcore analysis of `model` on a random input; raises if any op would be skipped."""
    h, w = resolution
    inputs = torch.randn(batch_size, 3, h, w)
    set_input_size = getattr(model, "set_input_size", None)
    if callable(set_input_size):  # windows follow the input before the trace, not inside it
        set_input_size(h, w)
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            analysis.total()
    finally:
        model.train(was_training)
    unknown = {op: n for op, n in analysis.unsupported_ops().items() if op not in ZERO_COST_OPS}
    if unknown:
        raise RuntimeError(
            f"FLOP count would skip ops with no handle: {dict(unknown)}; add a handle in radio_nas.measure.flops"
        )
    return analysis


def count_gmacs(model_or_spec: Any, resolution: tuple[int, int] | int = 224, batch_size: int = 1) -> float:
    """GMACs of one forward pass (per batch) at `resolution`, counted by fvcore."""
    from radio_nas.models import build_model, resolve_config

    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    model = model_or_spec if isinstance(model_or_spec, nn.Module) else build_model(model_or_spec)
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        cast(Any, resolve_config(cfg)).check_input_size(h, w)
    elif h <= 0 or w <= 0:
        raise ConfigError(f"bad resolution {h}x{w}", key="resolution")
    return flop_analysis(model, (h, w), batch_size).total() / 1e9


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
