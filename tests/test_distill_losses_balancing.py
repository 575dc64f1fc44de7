"""Losses and the four balancing methods against the equations of AM-RADIO supplementary §E on hand-computed numbers."""

import math

import pytest
import torch

from radio_nas.distill.balancing import (
    AdaLossBalancer,
    FixedBalancer,
    StaticUncertaintyBalancer,
    UncertaintyBalancer,
    make_balancer,
)
from radio_nas.distill.losses import (
    feature_fidelity,
    feature_loss,
    feature_smooth_l1,
    summary_fidelity,
    summary_loss,
)
from radio_nas.distill.pipeline import BalancingConfig

TERMS = ["a/summary", "a/features"]


def test_summary_loss_is_one_minus_cosine():
    s = torch.tensor([[1.0, 0.0], [2.0, 2.0]])
    t = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    assert summary_loss(s, t).tolist() == pytest.approx([1 - 1 / math.sqrt(2), 2.0])
    assert summary_fidelity(s, t).tolist() == pytest.approx([1 / math.sqrt(2), -1.0])


def test_feature_loss_per_token_cos_and_smooth_l1_beta2():
    # one image, 2 channels, 1x2 tokens: token 0 equal (loss 0); token 1 s=(3,0), t=(0,1):
    # cos = 0 -> 0.9; SmoothL1(beta=2): |3| -> 3 - 1 = 2, |1| -> 0.5*1/2 = 0.25; mean 1.125 -> 0.1125
    s = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    assert feature_loss(s, t).tolist() == pytest.approx([(0.0 + 0.9 + 0.1125) / 2])
    assert feature_fidelity(s, t).tolist() == pytest.approx([0.5])
    assert feature_smooth_l1(s, t).tolist() == pytest.approx([1.125 / 2])  # the magnitude part alone
    # the weights and beta are parameters of the recipe
    assert feature_loss(s, t, 1.0, 0.0).tolist() == pytest.approx([0.5])
    assert feature_loss(s, t, 0.0, 1.0, beta=1.0).tolist() == pytest.approx([(0 + (2.5 + 0.5) / 2) / 2])


def _losses(values):
    t = torch.tensor(values, requires_grad=True)  # (B, K)
    return t, {k: t[:, i] for i, k in enumerate(TERMS)}


def test_fixed_weights_from_yaml():
    bal = FixedBalancer(TERMS, {"a/summary": 2.0, "a/features": 0.5})
    _, losses = _losses([[1.0, 2.0], [3.0, 4.0]])
    total, lam = bal(losses)
    assert float(total.detach()) == pytest.approx(2.0 * 2 + 0.5 * 3)
    assert lam == {"a/summary": 2.0, "a/features": 0.5}


def test_uncertainty_static_eq5_values_and_gradients():
    bal = StaticUncertaintyBalancer(TERMS)
    with torch.no_grad():
        bal.b.copy_(torch.tensor([0.0, math.log(2.0)]))
    leaf, losses = _losses([[1.0, 2.0], [3.0, 4.0]])  # batch means 2, 3
    total, lam = bal(losses)
    # λ = e^-b / 2 = (0.5, 0.25); L = 0.5*2 + 0 + 0.25*3 + ln2/2
    assert float(total.detach()) == pytest.approx(1.0 + 0.75 + math.log(2) / 2)
    assert list(lam.values()) == pytest.approx([0.5, 0.25])
    total.backward()
    # dL/db = -e^-b/2 * L + 1/2
    assert bal.b.grad.tolist() == pytest.approx([-0.5 * 2 + 0.5, -0.25 * 3 + 0.5])
    assert leaf.grad.flatten().tolist() == pytest.approx([0.25, 0.125, 0.25, 0.125])  # λ / B


def test_uncertainty_eq6_input_dependent_b_softplus_and_gradients():
    bal = UncertaintyBalancer(TERMS, context_dim=2)
    assert bal.head.weight.abs().sum() == 0  # starts at b = 0: λ = 1, the naive weighting
    with torch.no_grad():
        bal.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    context = torch.tensor([[0.0, 5.0], [-6.0, 1.0]], requires_grad=True)  # b per sample and term
    leaf, losses = _losses([[1.0, 2.0], [3.0, 4.0]])
    total, _ = bal(losses, context=context)
    b = context.detach()
    sp = torch.nn.functional.softplus
    expected = ((torch.exp(-b) * leaf.detach() + sp(b)).sum(1)).mean()
    assert float(total.detach()) == pytest.approx(float(expected))
    assert float(total.detach()) == pytest.approx(
        (
            (1 * 1 + math.log(2))
            + (math.exp(-5) * 2 + math.log1p(math.exp(5)))
            + (math.exp(6) * 3 + math.log1p(math.exp(-6)))
            + (math.exp(-1) * 4 + math.log1p(math.exp(1)))
        )
        / 2
    )
    total.backward()
    # dL/db = (-e^-b L + sigmoid(b)) / B, summed into the bias gradient over the batch
    grad_b = (-torch.exp(-b) * leaf.detach() + torch.sigmoid(b)) / 2
    assert bal.head.bias.grad.tolist() == pytest.approx(grad_b.sum(0).tolist())
    # b(x'|Θ) is a function of the student: the context (the student summary) gets W^T dL/db (W = I)
    assert context.grad.flatten().tolist() == pytest.approx(grad_b.flatten().tolist())
    with pytest.raises(ValueError):
        bal(losses)


def test_uncertainty_detach_option_keeps_gradient_out_of_the_context():
    bal = make_balancer(BalancingConfig(method="uncertainty", detach=True), TERMS, context_dim=2)
    with torch.no_grad():
        bal.head.weight.fill_(0.5)
    context = torch.tensor([[1.0, 2.0]], requires_grad=True)
    total, _ = bal(_losses([[1.0, 2.0]])[1], context=context)
    total.backward()
    assert context.grad is None and bal.head.weight.grad.abs().sum() > 0


def test_adaloss_eq7_running_mean_and_no_gradient_through_lambda():
    bal = AdaLossBalancer(TERMS, momentum=0.5)
    leaf, losses = _losses([[2.0, 4.0], [2.0, 4.0]])
    total, lam = bal(losses)
    assert list(lam.values()) == pytest.approx([0.5, 0.25])  # E starts at the first value
    assert float(total.detach()) == pytest.approx(2.0)
    total.backward()
    assert leaf.grad.flatten().tolist() == pytest.approx([0.25, 0.125, 0.25, 0.125])  # λ/B: λ is a constant
    leaf2, losses2 = _losses([[4.0, 4.0], [4.0, 4.0]])
    total2, lam2 = bal(losses2)
    # E = 0.5*E + 0.5*L = (3, 4) -> λ = (1/3, 1/4)
    assert list(lam2.values()) == pytest.approx([1 / 3, 1 / 4])
    assert float(total2.detach()) == pytest.approx(4 / 3 + 1)
    total2.backward()
    assert leaf2.grad.flatten().tolist() == pytest.approx([1 / 6, 1 / 8, 1 / 6, 1 / 8])
    bal.eval()  # evaluation does not move the running mean
    bal(_losses([[100.0, 100.0]])[1])
    assert bal.running.tolist() == pytest.approx([3.0, 4.0])


@pytest.mark.parametrize(
    "method,cls",
    [
        ("fixed", FixedBalancer),
        ("uncertainty", UncertaintyBalancer),
        ("uncertainty_static", StaticUncertaintyBalancer),
        ("adaloss", AdaLossBalancer),
    ],
)
def test_make_balancer(method, cls):
    bal = make_balancer(BalancingConfig(method=method), TERMS, context_dim=4)
    assert isinstance(bal, cls)
    total, _ = bal(_losses([[1.0, 1.0]])[1], context=torch.zeros(1, 4))
    assert torch.isfinite(total)
