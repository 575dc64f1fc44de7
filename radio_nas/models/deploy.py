"""Deployable (inference-only) students: BatchNorm folded into the preceding convolution.

E-RADIO's ``switch_to_deploy`` also freezes each window's position bias into a buffer (see
``ContinuousPositionBias.freeze``), which leaves a graph ``torch.compile`` traces without a break.
Outputs match the training graph in eval mode to float rounding.

    fast = deploy_model(model)          # a folded copy, eval mode; `model` is untouched
    model.switch_to_deploy()            # or in place (E-RADIO); train() then refuses
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold `bn` (eval statistics) into `conv` in place: conv(x) -> bn(conv(x))."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    scale = (
        bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(scale)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        new_bias = (bias - bn.running_mean) * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        with torch.no_grad():
            conv.bias.copy_(new_bias)


def fuse_conv_bn(module: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential (in place);
    the BatchNorm becomes an Identity. Returns how many were folded."""
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.num_features == conv.out_channels:
                fold_conv_bn(conv, bn)
                seq[i + 1] = nn.Identity()
                folded += 1
    return folded


def deploy_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """`model` (or a copy) for inference: eval mode, BatchNorm folded (``switch_to_deploy`` where the
    model has one, else :func:`fuse_conv_bn`)."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    switch = getattr(model, "switch_to_deploy", None)
    if callable(switch):
        switch()
    else:
        fuse_conv_bn(model)
    return model


class CompiledDeploy(nn.Module):
    """A deployed model compiled by ``torch.compile`` (inductor) with its weights frozen as
    constants, so the folded convolutions run prepacked oneDNN kernels and the linears prepacked
    MKL ones, and the elementwise ops between them are fused. Inference only; shapes are static
    (a new input shape compiles again on its first call, tens of seconds to minutes on a CPU).
    The weights are read at compile time: changing them afterwards has no effect.

    Inductor applies freezing only while its ``freezing`` setting is on when a graph is compiled
    (``torch.compile(options=...)`` does not reach it in torch 2.13), so every call runs under it.
    """

    _compiled: Callable[[torch.Tensor], Any]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_compiled", torch.compile(model, dynamic=False))  # not a second submodule

    def forward(self, x: torch.Tensor) -> Any:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self._compiled(x)


def compile_deployed(model: nn.Module, example: torch.Tensor) -> CompiledDeploy:
    """:func:`deploy_model` (a copy), compiled now for inputs shaped like `example` (one forward
    without autograd). Outputs match the deployed eager model to float rounding (~1e-6)."""
    fast = deploy_model(model)
    set_input_size = getattr(fast, "set_input_size", None)
    if callable(set_input_size):  # windows follow the size outside the compiled graph
        set_input_size(int(example.shape[-2]), int(example.shape[-1]))
    compiled = CompiledDeploy(fast)
    with torch.inference_mode():
        compiled(example)
    return compiled
