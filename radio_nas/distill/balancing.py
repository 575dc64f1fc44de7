"""Loss balancing between teachers and their summary/feature terms (AM-RADIO supplementary §E).

    bal = make_balancer(pipeline.balancing, terms=["a/summary", "a/features"], context_dim=320,
                        fixed_weights={"a/summary": 1.0, "a/features": 1.0})
    total, weights = bal({"a/summary": l_s, "a/features": l_f}, context=student_summary)

Each loss is per sample, shape (B,). Methods:

- ``fixed``: L = sum_k w_k mean(L_k), weights from the pipeline.
- ``uncertainty`` (Eq. 6): b_k(x'|Θ) = a linear function of the student summary of the input, one
  output per teacher and per summary/features, initialised to 0 (so λ starts at 1);
  λ_k = exp(-b_k), L = mean_batch sum_k λ_k L_k + softplus(b_k). As AM-RADIO supplementary §E writes it, b is
  predicted by the student: the gradient of the balancing terms reaches the student trunk through
  the summary (``detach=True`` stops it there, so b only weighs the input).
- ``uncertainty_static`` (Eq. 5): learned scalars b_k, λ_k = exp(-b_k)/2, L = sum_k λ_k mean(L_k) + b_k/2.
- ``adaloss`` (Eq. 7): λ_k = 1/E[L_k] with E an exponential running mean of the detached loss
  (E <- m E + (1-m) L, starting at the first value, updated in training mode only); no gradient
  flows through λ.
"""

from __future__ import annotations

import abc
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from radio_nas.distill.pipeline import BalancingConfig


class Balancer(nn.Module, abc.ABC):
    def __init__(self, terms: list[str]):
        super().__init__()
        self.terms = list(terms)

    def forward(
        self, losses: dict[str, torch.Tensor], context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(total loss, the λ per term as floats, averaged over the batch)."""
        stacked = torch.stack([losses[k] for k in self.terms], dim=1)  # (B, K)
        total, lam = self.combine(stacked, context)
        return total, {k: float(v) for k, v in zip(self.terms, lam.detach().reshape(-1, len(self.terms)).mean(0))}

    @abc.abstractmethod
    def combine(self, losses: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Implemented by each balancing method."""


class FixedBalancer(Balancer):
    def __init__(self, terms: list[str], weights: dict[str, float]):
        super().__init__(terms)
        self.register_buffer("weights", torch.tensor([float(weights.get(k, 1.0)) for k in terms]))

    def combine(self, losses, context):
        return (losses.mean(0) * self.weights).sum(), self.weights


class UncertaintyBalancer(Balancer):
    """Eq. 6: input-dependent b predicted from the student, λ = exp(-b), + softplus(b)."""

    def __init__(self, terms: list[str], context_dim: int, detach: bool = False):
        super().__init__(terms)
        self.detach = detach
        self.head = nn.Linear(context_dim, len(terms))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def combine(self, losses, context):
        if context is None:
            raise ValueError("uncertainty balancing predicts b from the input: pass context")
        b = self.head((context.detach() if self.detach else context).float())  # (B, K)
        lam = torch.exp(-b)
        return (lam * losses + F.softplus(b)).sum(1).mean(), lam


class StaticUncertaintyBalancer(Balancer):
    """Eq. 5: learned scalars b, λ = exp(-b)/2, + b/2."""

    def __init__(self, terms: list[str]):
        super().__init__(terms)
        self.b = nn.Parameter(torch.zeros(len(terms)))

    def combine(self, losses, context):
        lam = torch.exp(-self.b) / 2
        return (lam * losses.mean(0) + self.b / 2).sum(), lam


class AdaLossBalancer(Balancer):
    """Eq. 7: λ = 1 / E[L] with a running mean E; λ carries no gradient."""

    def __init__(self, terms: list[str], momentum: float = 0.9, eps: float = 1e-8):
        super().__init__(terms)
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running", torch.zeros(len(terms)))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def combine(self, losses, context):
        batch_mean = losses.mean(0)
        running, started = cast(torch.Tensor, self.running), cast(torch.Tensor, self.started)
        if self.training:
            with torch.no_grad():
                current = batch_mean.detach()
                if bool(started):
                    running.mul_(self.momentum).add_((1 - self.momentum) * current)
                else:
                    running.copy_(current)
                    started.fill_(True)
        lam = 1.0 / (running.clone() + self.eps)
        return (lam * batch_mean).sum(), lam


def make_balancer(
    cfg: BalancingConfig, terms: list[str], context_dim: int, fixed_weights: dict[str, float] | None = None
) -> Balancer:
    if cfg.method == "fixed":
        return FixedBalancer(terms, fixed_weights or {})
    if cfg.method == "uncertainty":
        return UncertaintyBalancer(terms, context_dim, detach=cfg.detach)
    if cfg.method == "uncertainty_static":
        return StaticUncertaintyBalancer(terms)
    return AdaLossBalancer(terms, cfg.adaloss_momentum, cfg.eps)
