"""E-RADIO model: shapes, MRA structure, padding, dtypes, determinism, gradients."""

import pytest
import torch
from torch import nn

from radio_nas.models import build_model, resolve_config
from radio_nas.models.eradio import ERadio, MRABlock, WindowTransformerBlock, optimal_window_size

TINY = dict(width=16, depths=(1, 1, 1, 1), head_dim=16, cpb_hidden=16)


@pytest.mark.parametrize("preset,width", [("xt", 64), ("t", 80), ("s", 96), ("b", 128), ("l", 192)])
def test_presets_follow_supplementary_a2(preset, width):
    cfg = resolve_config(preset)
    assert cfg.width == width
    assert cfg.depths == ((1, 3, 4, 5) if preset in ("xt", "t") else (3, 3, 5, 5))
    assert cfg.widths == (width, 2 * width, 4 * width, 8 * width)


@pytest.mark.parametrize("preset", ["xt", "t", "s", "b", "l"])
def test_every_preset_gives_stride16_features_at_224(preset):
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = build_model(preset)
        summary, features = model(torch.empty(2, 3, 224, 224))
    cfg = model.cfg
    assert features.shape == (2, 4 * cfg.width, 14, 14)
    assert summary.shape == (2, 4 * cfg.width)


def test_v2_options_reproduce_the_published_parameter_count():
    # NVlabs/RADIO eradio_large_fullres_ws16 builds at 389.6 M parameters (reference notes §1).
    with torch.device("meta"):
        model = build_model("l-v2")
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(389.6, abs=0.05)


@pytest.mark.parametrize("size", [(224, 224), (256, 384), (224, 448), (512, 512), (96, 64)])
def test_non_square_inputs(size):
    model = build_model("xt", **TINY).eval()
    with torch.no_grad():
        summary, features = model(torch.randn(1, 3, *size))
    assert features.shape == (1, 64, size[0] // 16, size[1] // 16)
    assert summary.shape == (1, 64)
    assert torch.allclose(summary, features.mean((2, 3)))


def test_mra_pattern_builds_strided_conv_and_deconv_only_for_ratios_above_one():
    model = build_model("xt", **{**TINY, "depths": (1, 1, 2, 1)}, mra_pattern=((2, 1), (1,)))
    stage3 = [m for m in model.stages[2].blocks]
    assert [b.ratio for b in stage3] == [2, 1, 2, 1]  # 2 MRA units x pattern (2, 1)
    for block in stage3:
        if block.ratio == 2:
            assert isinstance(block.subsample, nn.Conv2d)
            assert block.subsample.kernel_size == (2, 2) and block.subsample.stride == (2, 2)
            assert isinstance(block.upsample, nn.ConvTranspose2d)
            assert block.upsample.kernel_size == (2, 2) and block.upsample.stride == (2, 2)
        else:
            assert isinstance(block.subsample, nn.Identity) and isinstance(block.upsample, nn.Identity)
    assert all(b.ratio == 1 for b in model.stages[3].blocks)


def test_options_build_the_modules_they_name():
    model = build_model("xt", **TINY, pre_conv="depthwise", mra_resample="pool", fusion="neck", output_dim=24)
    blocks = list(model.stages[2].blocks)
    plain = next(b for b in blocks if b.ratio == 1)
    assert plain.pre_conv[0].groups == plain.pre_conv[0].in_channels
    sub = next(b for b in blocks if b.ratio == 2)
    assert isinstance(sub.subsample[0], nn.AvgPool2d) and isinstance(sub.upsample[0], nn.Upsample)
    assert model(torch.randn(1, 3, 64, 64))[1].shape == (1, 24, 4, 4)
    no_bias = build_model("xt", **TINY, pos_bias="none")
    assert all(b.block.attn.pos_bias is None for b in no_bias.stages[2].blocks)


def test_half_merge_averages_block_and_input():
    block = MRABlock(16, 1, 2, ratio=1, merge="half", cpb_hidden=8).eval()
    x = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), 0.5 * block.block(x) + 0.5 * x, atol=1e-6)


def test_window_padding_keeps_windows_in_place():
    # A 5x5 map with window 4 is padded to 8x8 and cropped back; its top-left window holds only
    # real tokens, so it must match the block run on that 4x4 crop alone.
    torch.manual_seed(0)
    block = WindowTransformerBlock(16, 2, window_size=4, cpb_hidden=8).eval()
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        out = block(x)
        ref = block(x[:, :, :4, :4])
    assert out.shape == x.shape
    assert torch.allclose(out[:, :, :4, :4], ref, atol=1e-5)


def test_padded_keys_are_masked_out(monkeypatch):
    # Whatever the padding holds must not change the real tokens: pad with a large value instead
    # of zeros and compare. Without the mask the padded keys would take part in the softmax.
    import torch.nn.functional as F

    torch.manual_seed(0)
    block = WindowTransformerBlock(16, 2, window_size=4, cpb_hidden=8).eval()
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        zeros = block(x)
        pad = F.pad
        monkeypatch.setattr(F, "pad", lambda t, p, *a, **k: pad(t, p, value=7.0))
        sevens = block(x)
    assert torch.allclose(zeros, sevens, atol=1e-5)


def test_optimal_window_size_matches_reference_examples():
    assert optimal_window_size(224, 224) == 7
    assert optimal_window_size(256, 256) == 8
    assert optimal_window_size(512, 512) == 16
    assert optimal_window_size(256, 384) == 8


def test_train_eval_bf16_channels_last_and_determinism():
    torch.manual_seed(0)
    a = build_model("xt", **TINY)
    torch.manual_seed(0)
    b = build_model("xt", **TINY)
    x = torch.randn(2, 3, 64, 96)
    assert torch.equal(a(x)[1], b(x)[1])  # same seed, same weights, same output (train mode)
    a.eval()
    with torch.no_grad():
        ref = a(x)[1]
        cl = a.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))[1]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = a(x)[1]
    assert torch.allclose(ref, cl, atol=1e-4)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(ref, half.float(), atol=0.1 * ref.abs().max().item())


def test_gradients_reach_every_parameter():
    model = build_model("xt", **TINY, fusion="neck", pre_conv="dense")
    summary, features = model(torch.randn(2, 3, 64, 64))
    (summary.sum() + features.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_model_rejects_input_that_is_not_a_multiple_of_32():
    from radio_nas import ConfigError

    model = ERadio(resolve_config("xt", **TINY))
    with pytest.raises(ConfigError, match="multiples of 32"):
        model(torch.randn(1, 3, 100, 64))
