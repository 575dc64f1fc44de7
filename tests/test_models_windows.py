"""window_sizes: auto (chosen from the resolution), pinned windows that pad, and the
pretrained-window normalisation of the position bias."""

import json
import math
import warnings

import pytest
import torch

from radio_nas import ConfigError
from radio_nas.cli import main
from radio_nas.measure import count_gmacs
from radio_nas.models import build_model, resolve_config
from radio_nas.models.eradio import ContinuousPositionBias, WindowPaddingWarning

TINY = {"preset": "xt", "width": 16, "depths": (1, 1, 1, 1), "head_dim": 16, "cpb_hidden": 16}


@pytest.mark.parametrize(
    "spec,size,windows",
    [
        ("l-v2", (224, 224), (7, 7)),  # the reference's set_optimal_window_size: 224 -> 7
        ("l-v2", (256, 256), (8, 8)),
        ("l-v2", (512, 512), (16, 16)),
        ("l-v2", (1024, 1024), (16, 16)),  # capped at max_window
        ("xt", (128, 128), (4, 4)),  # stage 3 is 8x8, its ratio-2 block attends over 4x4
        ({"preset": "xt", "mra_pattern": [[1], [1]]}, (128, 128), (8, 4)),
        ({"preset": "xt", "window_sizes": [7, 7]}, (128, 128), (7, 7)),  # pinned
    ],
)
def test_auto_windows_follow_the_resolution(spec, size, windows):
    assert resolve_config(spec).windows_for(*size) == windows


def test_presets_are_auto_and_keep_window_7_at_224():
    for preset in ("xt", "t", "s", "b", "l", "l-v2"):
        cfg = resolve_config(preset)
        assert cfg.window_sizes == "auto" and cfg.windows_for(224, 224) == (7, 7)


def test_model_follows_the_input_size_and_build_resolution():
    model = build_model(TINY).eval()
    assert model.window_sizes == (7, 7)  # built for AM-RADIO supplementary §A's 224 until told otherwise
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 128))
    assert model.window_sizes == (4, 4)
    assert build_model(TINY, resolution=(512, 512)).window_sizes == (16, 16)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_model(TINY, resolution=(100, 100))


def test_auto_windows_cut_the_padding_gmacs_at_128():
    # window 7 at 128 px pads stage 3 (8x8) to 14x14
    auto = count_gmacs("xt", (128, 128))
    pinned = count_gmacs({"preset": "xt", "window_sizes": [7, 7]}, (128, 128))
    assert auto < pinned / 1.2


def test_pinned_windows_that_do_not_tile_say_so():
    cfg = resolve_config({**TINY, "window_sizes": [8, 8]})
    assert cfg.window_padding(256, 256) == []
    assert cfg.window_padding(128, 128) == [
        "stage 3 ratio 2: map 4x4 padded to 8x8 for window 8",
        "stage 4 ratio 1: map 4x4 padded to 8x8 for window 8",
    ]
    model = build_model(cfg).eval()
    with pytest.warns(WindowPaddingWarning, match=r"do not tile a 128x128 input .*window_sizes: auto"), torch.no_grad():
        model(torch.randn(1, 3, 128, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per size, and never for auto
        with torch.no_grad():
            model(torch.randn(1, 3, 128, 128))
            build_model(TINY)(torch.randn(1, 3, 128, 128))


def test_profile_reports_windows_and_padding(capsys):
    args = [
        "profile",
        "xt",
        "--set",
        "width=16",
        "--set",
        "depths=[1,1,1,1]",
        "--set",
        "head_dim=16",
        "--resolution",
        "128",
        "--runs",
        "1",
        "--warmup",
        "0",
    ]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] == [4, 4] and out["window_padding"] == []
    assert main([*args, "--set", "window_sizes=[8,8]"]) == 0
    text = capsys.readouterr().out
    assert "windows    8, 8 (pinned)" in text and "padding    stage 3 ratio 2: map 4x4 padded to 8x8" in text


def test_window_errors_name_the_field():
    with pytest.raises(ConfigError, match="'auto'") as info:
        resolve_config({**TINY, "window_sizes": "big"})
    assert info.value.key == "window_sizes"
    with pytest.raises(ConfigError) as info:
        resolve_config({**TINY, "max_window": 0})
    assert info.value.key == "max_window"


def test_pretrained_window_normalises_the_coordinates():
    # reference: coords / (pretrained_window - 1) * 8, then sign * log2(|x| + 1) / log2(8)
    bias = ContinuousPositionBias(7, 2, 8, pretrained_window=16)
    assert bias.table.abs().max().item() == pytest.approx(math.log2(6 / 15 * 8 + 1) / 3)
    own = ContinuousPositionBias(7, 2, 8)
    assert own.table.abs().max().item() == pytest.approx(math.log2(8 + 1) / 3)  # normalised by 6
    # at its pretrained window the bias is the same either way; a model run at window 7 uses the
    # centre of the window-16 table (the same relative offsets, the same bias)
    at16 = ContinuousPositionBias(16, 2, 8, pretrained_window=16)
    at16.load_state_dict(bias.state_dict())
    with torch.no_grad():
        small, large = bias(), at16()
    rel16 = at16.table.view(31, 31, 2)[15 - 6 : 15 + 7, 15 - 6 : 15 + 7]
    assert torch.equal(bias.table.view(13, 13, 2), rel16)
    assert small.shape == (2, 49, 49) and large.shape == (2, 256, 256)
    assert torch.allclose(small[:, 0, 48], large[:, 0, 6 * 16 + 6])  # offset (6, 6) in both windows


@pytest.mark.slow
def test_l_v2_preset_at_224_is_the_reference_33_90_gmacs():
    assert count_gmacs("l-v2", (224, 224)) == pytest.approx(33.90, abs=0.005)
