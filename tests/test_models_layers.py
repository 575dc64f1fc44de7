"""One Mlp and one initialisation for both student families."""

import torch
from torch import nn

from radio_nas.models import build_model
from radio_nas.models.layers import Mlp


def test_both_families_use_the_shared_mlp_and_init():
    torch.manual_seed(0)
    eradio = build_model({"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16})
    vit = build_model({"preset": "vit-t", "depth": 2})
    e_mlps = [m for m in eradio.modules() if isinstance(m, Mlp)]
    v_mlps = [m for m in vit.modules() if isinstance(m, Mlp)]
    assert len(e_mlps) == 3 and len(v_mlps) == 2  # stage 3: one unit of [2, 1]; stage 4: one block
    assert all(m[0].bias is None for m in e_mlps) and all(m[0].bias is not None for m in v_mlps)
    assert "stages.2.blocks.0.block.mlp.0.weight" in eradio.state_dict()  # names unchanged
    for model in (eradio, vit):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.weight.numel() > 1000]
        weights = torch.cat([m.weight.flatten() for m in linears])
        assert abs(weights.std().item() - 0.02) < 0.002  # not PyTorch's default (kaiming-uniform)
        assert all(m.bias is None or not m.bias.any() for m in linears)
