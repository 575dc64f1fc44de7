"""The balancing methods inside the trial's real training step (a tiny E-RADIO student, synthetic
teacher targets): after a few optimiser steps, which parameters the balancing terms train."""

from pathlib import Path

import numpy as np
import pytest
import torch

from radio_nas.distill import load_pipeline
from radio_nas.distill.cache import CacheEntry
from radio_nas.distill.targets import entry_stats
from radio_nas.distill.trial import _losses, _optimizer, _Student, _Targets

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16, "cpb_hidden": 16}


def _setup(method: str, **balancing):
    from radio_nas.models import build_model, resolve_config

    overrides = {
        "resolution": 64,
        "adaptor.hidden": 16,
        "balancing.method": method,
        "steps": 3,
        "optim.warmup_steps": 0,
        "optim.lr": 0.01,
        **{f"balancing.{k}": v for k, v in balancing.items()},
    }
    pipeline = load_pipeline(ROOT / "pipelines/distill_cpu.yaml", overrides)
    rng = np.random.default_rng(0)
    entries = {
        t.name: CacheEntry(
            "k",
            None,
            {},
            rng.standard_normal((4, 12)).astype(np.float16),
            rng.standard_normal((4, 6, 2, 2)).astype(np.float16),
        )
        for t in pipeline.teachers
    }
    torch.manual_seed(0)
    student = _Student(
        pipeline,
        build_model(resolve_config(TINY)),
        _Targets(entries, entries, True, 0.0, {n: entry_stats(e) for n, e in entries.items()}),
    )
    x = torch.randn(4, 3, 64, 64)
    y = {
        name: (torch.from_numpy(e.summary.astype(np.float32)), torch.from_numpy(e.features.astype(np.float32)))
        for name, e in entries.items()
    }
    return pipeline, student, x, y


def _train(pipeline, student, x, y, steps=3):
    """The trial's step: forward, per-sample losses, balancer(losses, context=summary), AdamW."""
    opt, _ = _optimizer(pipeline, student)
    history = []
    for _ in range(steps):
        summary, outputs = student(x)
        losses = _losses(student, outputs, y)
        total, weights = student.balancer(losses, context=summary)
        history.append(({k: float(v.detach().mean()) for k, v in losses.items()}, weights))
        opt.zero_grad()
        total.backward()
        opt.step()
    return history


def _balancing_only_grads(student, x, y):
    """Gradients of the balancing terms alone: the per-term losses enter as constants, so only the
    path through b (and ψ(b)) can reach any parameter."""
    student.zero_grad(set_to_none=True)
    summary, outputs = student(x)
    losses = {k: v.detach() for k, v in _losses(student, outputs, y).items()}
    total, _ = student.balancer(losses, context=summary)
    total.backward()
    trunk = sum(float(p.grad.abs().sum()) for p in student.model.parameters() if p.grad is not None)
    return trunk


def test_eq6_b_head_and_student_trunk_receive_gradient_from_the_balancing_terms():
    pipeline, student, x, y = _setup("uncertainty")
    head = student.balancer.head
    assert _balancing_only_grads(student, x, y) == 0.0  # zero-initialised head: λ = 1, nothing flows yet
    _train(pipeline, student, x, y)
    assert head.weight.abs().sum() > 0 and head.bias.abs().sum() > 0  # the head learned
    trunk = _balancing_only_grads(student, x, y)
    assert head.weight.grad.abs().sum() > 0
    assert trunk > 0  # b(x'|Θ) is a function of the student: its gradient reaches the trunk


def test_eq6_detach_option_keeps_the_trunk_out():
    pipeline, student, x, y = _setup("uncertainty", detach=True)
    _train(pipeline, student, x, y)
    assert student.balancer.head.weight.abs().sum() > 0
    assert _balancing_only_grads(student, x, y) == 0.0
    assert student.balancer.head.weight.grad.abs().sum() > 0


def test_eq5_static_b_receives_gradient():
    pipeline, student, x, y = _setup("uncertainty_static")
    b = student.balancer.b
    _train(pipeline, student, x, y)
    assert b.abs().min() > 0  # every b moved from 0
    assert _balancing_only_grads(student, x, y) == 0.0  # Eq. 5's b does not depend on the input
    assert b.grad.abs().min() > 0


def test_adaloss_lambda_is_one_over_the_running_mean_of_the_step_losses():
    pipeline, student, x, y = _setup("adaloss", adaloss_momentum=0.5)
    history = _train(pipeline, student, x, y, steps=4)
    running: dict[str, float] = {}
    for losses, weights in history:
        for k, value in losses.items():  # E starts at the first loss, then E <- 0.5 E + 0.5 L
            running[k] = value if k not in running else 0.5 * running[k] + 0.5 * value
        assert weights == pytest.approx({k: 1.0 / e for k, e in running.items()}, rel=1e-5)
    assert len({round(v, 6) for v in history[-1][1].values()}) == 4  # four different λ, not a constant
