"""E-RADIO options added after ids were recorded: window_fit, drop_path, layer_scale; the ids of
configs that leave them at their defaults are the recorded ones."""

import json

import pytest
import torch

from radio_nas import ConfigError
from radio_nas._config import dump_yaml, stable_id
from radio_nas.cli import main
from radio_nas.models import build_model, resolve_config
from radio_nas.models.eradio import WindowTransformerBlock
from radio_nas.models.layers import DropPath

TINY = {"preset": "xt", "width": 16, "depths": (1, 1, 2, 1), "head_dim": 16, "cpb_hidden": 16}

# Ids as recorded before window_fit, drop_path and layer_scale existed (every cache, results table
# and exhaustive table is keyed by them); a preset's id and its id as built at 224.
RECORDED_IDS = {
    "xt": ("5edb98dc9221", "033f54d2df61"),
    "t": ("7e662d36199c", "00d048a41526"),
    "s": ("cf6a183a9646", "fea42b42be8c"),
    "b": ("f4aed1598b13", "325b1fa7449e"),
    "l": ("7cc9ccb18245", "9ddae7e624ce"),
    "l-v2": ("0dacdd05f599", "8b0023d798e0"),
}


@pytest.mark.parametrize("preset", sorted(RECORDED_IDS))
def test_recorded_preset_ids_are_unchanged(preset):
    cfg = resolve_config(preset)
    assert (cfg.id, cfg.built_at(224, 224).id) == RECORDED_IDS[preset]
    assert resolve_config("vit-s").id == "8ca366326bdb"


def test_late_fields_enter_the_id_only_off_their_default(tmp_path):
    base = resolve_config("t")
    same = resolve_config("t", window_fit="pad_mask", drop_path=0, layer_scale=None)
    assert same.id == base.id and same == base
    assert {"window_fit", "drop_path", "layer_scale"} <= set(base.to_dict())  # exported files still say them
    assert not {"window_fit", "drop_path", "layer_scale"} & set(base.id_payload())
    ids = {base.id}
    for change in ({"window_fit": "resize"}, {"drop_path": 0.1}, {"layer_scale": 1e-5}):
        cfg = base.replace(**change)
        assert cfg.id == stable_id(cfg.id_payload()) and set(change) <= set(cfg.id_payload())
        ids.add(cfg.id)
        path = tmp_path / "arch.yaml"  # the id survives a round trip through YAML
        path.write_text(dump_yaml(cfg.to_dict()))
        assert resolve_config(path).id == cfg.id
    assert len(ids) == 4


@pytest.mark.parametrize(
    "field,value,text",
    [
        ("window_fit", "crop", "'pad_mask', 'resize'"),
        ("drop_path", 1.0, r"\[0, 1\)"),
        ("drop_path", -0.1, r"\[0, 1\)"),
        ("layer_scale", 0, "positive number or null"),
    ],
)
def test_option_errors_name_the_field(field, value, text):
    with pytest.raises(ConfigError, match=text) as info:
        resolve_config({**TINY, field: value})
    assert info.value.key == field


def test_drop_path_zeroes_whole_samples_in_training_only():
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 4, 4)
    torch.manual_seed(0)
    out = drop(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # kept samples scaled by 1 / (1 - rate)
    assert (per_sample.min(1).values == per_sample.max(1).values).all()  # a sample is dropped whole
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    assert torch.equal(drop.eval()(x), x)


def test_drop_path_rises_linearly_over_the_attention_blocks():
    model = build_model({**TINY, "drop_path": 0.3})
    blocks = [b.block for stage in model.stages[2:] for b in stage.blocks]  # stage 3: 2 units x [2, 1]; stage 4: 1
    rates = [b.drop_path.rate if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    assert rates == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])
    off = build_model(TINY)  # rate 0: no module at all, the same tensors as before the option existed
    assert not any(isinstance(m, DropPath) for m in off.modules())
    assert off.state_dict().keys() == model.state_dict().keys()


def test_drop_path_is_the_identity_in_eval_and_random_in_training():
    torch.manual_seed(0)
    plain = build_model(TINY)
    dropped = build_model({**TINY, "drop_path": 0.5})
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(plain.eval()(x)[1], dropped.eval()(x)[1])
        plain.train(), dropped.train()
        torch.manual_seed(1)
        a = dropped(x)[1]
        torch.manual_seed(1)
        b = dropped(x)[1]
        torch.manual_seed(1)
        c = plain(x)[1]
    assert torch.equal(a, b)  # the mask follows the seed
    assert (a - c).abs().max() > 1e-3  # a dropped branch changes the features


def test_layer_scale_scales_each_branch():
    torch.manual_seed(0)
    plain = WindowTransformerBlock(32, 2, 4, cpb_hidden=16).eval()
    scaled = WindowTransformerBlock(32, 2, 4, cpb_hidden=16, layer_scale=1e-5).eval()
    missing, unexpected = scaled.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["ls1.gamma", "ls2.gamma"] and not unexpected
    assert torch.equal(scaled.ls1.gamma, torch.full((32,), 1e-5))
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        scaled.ls1.gamma.zero_(), scaled.ls2.gamma.zero_()
        assert torch.equal(scaled(x), x)  # both branches scaled to nothing: the residual alone
        scaled.ls1.gamma.fill_(1.0), scaled.ls2.gamma.fill_(1.0)
        assert torch.allclose(scaled(x), plain(x), atol=1e-6)  # gamma 1: the block without it
        scaled.ls2.gamma.zero_()  # MLP branch off: out = x + gamma1 * attention branch, linear in gamma1
        full = scaled(x) - x
        scaled.ls1.gamma.fill_(0.25)
        assert torch.allclose(scaled(x) - x, 0.25 * full, atol=1e-6) and full.abs().max() > 1e-2
    model = build_model({**TINY, "layer_scale": 1e-5})
    gammas = [n for n, _ in model.named_parameters() if n.endswith(".gamma")]
    assert len(gammas) == 2 * 5
    model(torch.randn(2, 3, 64, 64))[1].sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.endswith(".gamma"))


def test_resize_leaves_nothing_padded_and_says_what_it_resizes():
    pinned = {**TINY, "window_sizes": [8, 8]}
    pad = resolve_config(pinned)
    resize = resolve_config({**pinned, "window_fit": "resize"})
    assert pad.window_padding(256, 384) and not pad.window_resizing(256, 384)
    assert not resize.window_padding(256, 384)
    assert resize.window_resizing(256, 384) == [
        "stage 3: map 16x24 resized (nearest) to 16x32, a multiple of ratio 2 x window 8, and back",
        "stage 4: map 8x12 resized (nearest) to 8x16, a multiple of ratio 1 x window 8, and back",
    ]
    assert resize.window_resizing(256, 256) == []


def test_profile_states_the_window_rule(capsys):
    args = ["profile", "xt", *("--set", "width=16", "--set", "depths=[1,1,1,1]", "--set", "head_dim=16")]
    args += ["--set", "window_sizes=[8,8]", "--resolution", "256x384", "--runs", "1", "--warmup", "0"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["window_fit"] == "pad_mask" and out["window_resizing"] == [] and out["window_padding"]
    assert main([*args, "--set", "window_fit=resize"]) == 0
    text = capsys.readouterr().out
    assert "window fit resize" in text and "resizing   stage 3: map 16x24 resized (nearest) to 16x32" in text
