"""Published E-RADIO v2 weights: a state dict with the published names and shapes (generated here
from the layout in the reference notes §1.8, not from the reference code) maps onto our model."""

import argparse
import json

import pytest
import torch

from radio_nas import ConfigError
from radio_nas.cli import main
from radio_nas.models import build_model, resolve_config
from radio_nas.models.published import checkpoint_window, load_published_eradio, map_published_state_dict

# An xxxtiny-sized model with the v2 options (the published eradio_xxxtiny layout).
SMALL = {
    "width": 32,
    "stem_width": 32,
    "depths": [1, 3, 4, 5],
    "head_dim": 16,
    "pre_conv": "dense",
    "mra_merge": "half",
    "fusion": "neck",
    "output_dim": 256,
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def published_layout(width, stem, depths, heads, out_dim, cpb=512, window=16, pooled=False, neck_stages=2):
    """(name, shape) of every tensor the published code's state dict holds, stage by stage.
    `pooled`: the eradio_xxxtiny_8x_* options (avg-pool + 1x1 conv-BN resampling, depthwise
    pre-conv); `neck_stages` 3: a neck from stage 2 (eradio_xxxtiny_8x_ws16)."""

    def conv_bn(prefix, out_chs, in_chs, k):
        yield f"{prefix}.conv.weight", (out_chs, in_chs, k, k)
        for leaf in BN:
            yield f"{prefix}.bn.{leaf}", () if leaf == "num_batches_tracked" else (out_chs,)

    yield from conv_bn("patch_embed.conv_down.0", stem, 3, 3)
    yield from conv_bn("patch_embed.conv_down.2", width, stem, 3)
    chs = [width, 2 * width, 4 * width, 8 * width]
    for level in (0, 1):
        c, h, n = chs[level], chs[level] // 2, depths[level]
        yield from conv_bn(f"levels.{level}.blocks.cv1", 2 * h, c, 1)
        for j in range(n):
            yield from conv_bn(f"levels.{level}.blocks.m.{j}.cv1", h, h, 3)
            yield from conv_bn(f"levels.{level}.blocks.m.{j}.cv2", h, h, 3)
        yield from conv_bn(f"levels.{level}.blocks.cv2", c, (2 + n) * h, 1)
    for level in (0, 1, 2):
        yield from conv_bn(f"levels.{level}.downsample.reduction", chs[level + 1], chs[level], 3)
    for level, ratios, nh in ((2, (2, 1), heads[0]), (3, (1,), heads[1])):
        c, n = chs[level], window * window
        for unit in range(depths[level]):
            for k, ratio in enumerate(ratios):
                p = f"levels.{level}.blocks.{unit}.attention_blocks.{k}"
                if ratio > 1 and pooled:
                    yield from conv_bn(f"{p}.downsample_mixer", c, c, 1)
                    yield from conv_bn(f"{p}.upsample_op", c, c, 1)
                elif ratio > 1:
                    for op in ("downsample_op", "upsample_op"):
                        yield f"{p}.{op}.weight", (c, c, ratio, ratio)
                        yield f"{p}.{op}.bias", (c,)
                elif pooled:
                    yield f"{p}.pre_conv.conv.weight", (c, 1, 3, 3)
                    for leaf in BN:
                        yield f"{p}.pre_conv.bn.{leaf}", () if leaf == "num_batches_tracked" else (c,)
                else:
                    yield from conv_bn(f"{p}.pre_conv", c, c, 3)
                yield f"{p}.norm1.weight", (c,)
                yield f"{p}.norm1.bias", (c,)
                yield f"{p}.attn.qkv.weight", (3 * c, c)
                yield f"{p}.attn.proj.weight", (c, c)
                yield f"{p}.attn.pos_emb_funct.relative_coords_table", (1, 2 * window - 1, 2 * window - 1, 2)
                yield f"{p}.attn.pos_emb_funct.relative_position_index", (n, n)
                yield f"{p}.attn.pos_emb_funct.relative_bias", (1, nh, n, n)
                yield f"{p}.attn.pos_emb_funct.cpb_mlp.0.weight", (cpb, 2)
                yield f"{p}.attn.pos_emb_funct.cpb_mlp.0.bias", (cpb,)
                yield f"{p}.attn.pos_emb_funct.cpb_mlp.2.weight", (nh, cpb)
                yield f"{p}.norm2.weight", (c,)
                yield f"{p}.norm2.bias", (c,)
                yield f"{p}.mlp.fc1.weight", (4 * c, c)
                yield f"{p}.mlp.fc2.weight", (c, 4 * c)
    for b, c in enumerate(chs[4 - neck_stages :]):
        p = f"high_res_neck.neck_features_proj.{b}"
        yield f"{p}.conv1.weight", (c, 1, 3, 3)
        yield f"{p}.conv1.bias", (c,)
        for leaf in BN:
            yield f"{p}.norm.{leaf}", () if leaf == "num_batches_tracked" else (c,)
        yield f"{p}.conv2.weight", (out_dim, c, 1, 1)
        yield f"{p}.conv2.bias", (out_dim,)
    for leaf in BN:  # the final BN and the classifier are Identity in RADIO
        yield f"norm.{leaf}", () if leaf == "num_batches_tracked" else (chs[3],)
    yield "head.weight", (1000, chs[3])
    yield "head.bias", (1000,)


def _random_state(layout, device="cpu"):
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, shape in layout:
        if device == "meta":
            out[name] = torch.empty(shape, device="meta")
        elif name.endswith(("num_batches_tracked", "relative_position_index")):
            out[name] = torch.zeros(shape, dtype=torch.long)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g) + 0.5
        else:
            out[name] = torch.randn(shape, generator=g) * 0.05
    return out


def test_l_v2_takes_every_published_tensor_by_name_and_shape():
    layout = list(published_layout(192, 64, (3, 3, 5, 5), (8, 16), 1536))
    mapped = map_published_state_dict(_random_state(layout, "meta"), resolve_config("l-v2"))
    with torch.device("meta"):
        ours = build_model("l-v2").state_dict()
    assert set(mapped) == set(ours)
    assert sum(v.numel() for k, v in mapped.items() if "running" not in k and "num_batches" not in k) == 389_598_784


def test_published_weights_land_where_the_names_say(tmp_path):
    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    path = tmp_path / "eradio_small.pth.tar"  # as published: prefixed, wrapped, with training args
    torch.save(
        {"state_dict": {f"base_model.{k}": v for k, v in state.items()}, "args": argparse.Namespace(model="eradio")},
        path,
    )
    model = load_published_eradio(path, SMALL)
    assert model.cfg.pretrained_window == 16  # the published window normalises the bias
    sd = model.state_dict()
    pairs = {  # published -> ours: downsample after stage i is ours before stage i + 1; units flattened
        "levels.1.downsample.reduction.conv.weight": "stages.2.downsample.0.weight",
        "levels.1.downsample.reduction.bn.running_var": "stages.2.downsample.1.running_var",
        "patch_embed.conv_down.2.bn.weight": "stem.1.1.weight",
        "levels.2.blocks.3.attention_blocks.1.attn.qkv.weight": "stages.2.blocks.7.block.attn.qkv.weight",
        "levels.2.blocks.1.attention_blocks.0.downsample_op.weight": "stages.2.blocks.2.subsample.weight",
        "levels.3.blocks.4.attention_blocks.0.attn.pos_emb_funct.cpb_mlp.2.weight": (
            "stages.3.blocks.4.block.attn.pos_bias.mlp.2.weight"
        ),
        "levels.3.blocks.0.attention_blocks.0.mlp.fc2.weight": "stages.3.blocks.0.block.mlp.2.weight",
        "high_res_neck.neck_features_proj.1.conv2.bias": "fusion.proj.1.3.bias",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(sd[ours], state[theirs]), (theirs, ours)
    with torch.no_grad():
        _, features = model(torch.randn(1, 3, 224, 224))
    assert features.shape == (1, 256, 14, 14) and torch.isfinite(features).all()


def test_mismatches_name_the_tensor():
    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    cfg = resolve_config(SMALL)
    bad = dict(state, **{"levels.2.blocks.0.attention_blocks.0.attn.qkv.weight": torch.zeros(3, 3)})
    with pytest.raises(ConfigError, match=r"shape \(3, 3\) does not fit stages.2.blocks.0.block.attn.qkv"):
        map_published_state_dict(bad, cfg)
    with pytest.raises(ConfigError, match="no E-RADIO v2 module") as info:
        map_published_state_dict({**state, "levels.2.blocks.0.extra.weight": torch.zeros(1)}, cfg)
    assert info.value.key == "levels.2.blocks.0.extra.weight"
    missing = {k: v for k, v in state.items() if "cpb_mlp.0.bias" not in k}
    with pytest.raises(ConfigError, match="has nothing for stages.2.blocks.0.block.attn.pos_bias.mlp.0.bias"):
        map_published_state_dict(missing, cfg)
    with pytest.raises(ConfigError, match="does not have"):  # deeper published stage than the config
        map_published_state_dict(state, resolve_config({**SMALL, "depths": [1, 3, 3, 5]}))


def test_profile_loads_weights_only_checkpoints(tmp_path, capsys):
    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    path = tmp_path / "published.pt"
    torch.save({"state_dict": state}, path)
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    args = [
        "profile",
        "xt",
        *sets,
        "--set",
        "pretrained_window=16",
        "--resolution",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--json",
    ]
    assert main([*args, "--weights", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == str(path)
    ours = tmp_path / "ours.pt"  # the model's own state dict loads as is
    torch.save(build_model({**SMALL, "pretrained_window": 16}).state_dict(), ours)
    assert main([*args, "--weights", str(ours)]) == 0
    capsys.readouterr()

    class Evil:
        def __reduce__(self):
            return (print, ("pickle ran code",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, evil)
    for bad, text in ((evil, "weights-only torch checkpoint"), (tmp_path / "none.pt", "no such file")):
        assert main([*args, "--weights", str(bad)]) == 2
        out = capsys.readouterr()
        assert text in out.err and out.err.count("\n") == 1 and "pickle ran code" not in out.out


SIZE = (256, 384)  # stage 3 is 16x24, stage 4 8x12: window 16 tiles neither


def _nearest(x, size):
    """Nearest resize written out: output row i reads input row floor(i * in / out) (as F.interpolate)."""
    h, w = x.shape[-2:]
    rows = torch.arange(size[0]) * h // size[0]
    cols = torch.arange(size[1]) * w // size[1]
    return x[..., rows[:, None], cols[None, :]]


def _reference_forward(model, x, window):
    """The reference's rule by hand: each transformer stage's map resized to the next multiple of
    max(ratio) x window, its blocks run where the windows tile (nothing padded), resized back."""
    x = model.stages[1](model.stages[0](model.stem(x)))
    outs = []
    for stage in model.stages[2:]:
        y = stage.downsample(x)
        h, w = y.shape[-2:]
        m = max(b.ratio for b in stage.blocks) * window
        y = _nearest(y, (-(-h // m) * m, -(-w // m) * m))
        for block in stage.blocks:
            assert (y.shape[-2] // block.ratio) % window == 0 and (y.shape[-1] // block.ratio) % window == 0
            y = block(y)
        x = _nearest(y, (h, w))
        outs.append(x)
    return model.fusion(*outs)


def test_loader_defaults_to_the_checkpoint_window_and_resize_at_every_resolution():
    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    model = load_published_eradio(state, SMALL)
    assert model.cfg.window_fit == "resize" and model.cfg.window_sizes == (16, 16)
    assert model.cfg.pretrained_window == 16
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert model.window_sizes == (16, 16)  # 14x14 resized to 32x32, not window 7
    own = load_published_eradio(state, SMALL, window_sizes="auto", window_fit="pad_mask")
    assert own.cfg.window_fit == "pad_mask" and own.cfg.window_sizes == "auto"
    with torch.no_grad():
        own(torch.randn(1, 3, 224, 224))
    assert own.window_sizes == (7, 7)
    ws12 = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256, cpb=64, window=12, pooled=True))
    assert checkpoint_window(ws12) == 12  # read from the position-bias tables
    assert load_published_eradio(ws12, WS12).cfg.window_sizes == (12, 12)
    with pytest.raises(ConfigError, match="'resize', 'pad_mask'|'pad_mask', 'resize'") as info:
        load_published_eradio(state, SMALL, window_fit="crop")
    assert info.value.key == "window_fit"


def test_published_weights_resize_like_an_independent_nearest_resize_at_256x384():
    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    model = load_published_eradio(state, SMALL)
    padded = load_published_eradio(state, SMALL, window_fit="pad_mask")
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        ours = model(x)[1]
        expected = _reference_forward(model, x, 16)
        other = padded(x)[1]
    assert ours.shape == (2, 256, 16, 24)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-6)
    # the two rules differ here, far beyond the tolerance (small random weights: about 0.15 % relative)
    assert not torch.allclose(other, expected, rtol=1e-5, atol=1e-6)
    assert (other - expected).norm() / expected.norm() > 1e-4


WS12 = {**SMALL, "pre_conv": "depthwise", "mra_resample": "pool", "cpb_hidden": 64}
"""The eradio_xxxtiny_8x_ws12 options: pooled resampling, depthwise pre-conv, cpb hidden 64."""


def test_pooled_layout_loads_and_a_stride_8_neck_is_refused_by_name():
    layout = list(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256, cpb=64, window=12, pooled=True))
    state = _random_state(layout)
    model = load_published_eradio(state, WS12)
    sd = model.state_dict()
    p = "levels.2.blocks.1.attention_blocks"
    pairs = {
        f"{p}.0.downsample_mixer.conv.weight": "stages.2.blocks.2.subsample.1.0.weight",
        f"{p}.0.downsample_mixer.bn.running_var": "stages.2.blocks.2.subsample.1.1.running_var",
        f"{p}.0.upsample_op.conv.weight": "stages.2.blocks.2.upsample.1.0.weight",
        f"{p}.0.upsample_op.bn.bias": "stages.2.blocks.2.upsample.1.1.bias",
        f"{p}.1.pre_conv.conv.weight": "stages.2.blocks.3.pre_conv.0.weight",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(sd[ours], state[theirs]), (theirs, ours)
    # the reference code builds eradio_xxxtiny_8x_ws12 at 6,515,528 parameters, 257,512 of them in
    # the final norm and the 1000-class head, which RADIO drops
    assert sum(p.numel() for p in model.parameters()) == 6_515_528 - 257_512
    with torch.no_grad():
        assert model(torch.rand(1, 3, *SIZE))[1].shape == (1, 256, 16, 24)
    with pytest.raises(ConfigError, match="needs mra_resample: pool; the architecture has conv") as info:
        map_published_state_dict(state, resolve_config({**SMALL, "cpb_hidden": 64}))
    assert info.value.key == "levels.2.blocks.0.attention_blocks.0.downsample_mixer.conv.weight"
    with pytest.raises(ConfigError, match="needs pre_conv: depthwise; the architecture has dense") as info:
        map_published_state_dict(state, resolve_config({**WS12, "pre_conv": "dense"}))
    assert info.value.key == "levels.2.blocks.0.attention_blocks.1.pre_conv.conv.weight"
    ws16 = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256, cpb=64, pooled=True, neck_stages=3))
    with pytest.raises(ConfigError, match="a neck from stage 2 .*cannot be expressed") as info:
        load_published_eradio(ws16, WS12)
    assert info.value.key.startswith("high_res_neck.neck_features_proj.2.")
    assert str(info.value).count("\n") == 0
