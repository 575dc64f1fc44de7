"""ViT student family and its ViTDet window/global augmentation."""

from __future__ import annotations

import pytest
import torch

from radio_nas._config import ConfigError
from radio_nas.models import FAMILIES, build_model, resolve_config
from radio_nas.models.vit import (
    ViT,
    ViTConfig,
    reorder_patches,
    restore_patch_order,
    sample_window_size,
    valid_window_sizes,
    vitdet_schedule,
    window_order,
)

TINY = dict(family="vit", patch_size=8, width=32, depth=3, num_heads=2, max_grid=16)


def tiny(**overrides) -> ViT:
    torch.manual_seed(0)
    return build_model({**TINY, **overrides})


def twin(model: ViT, **overrides) -> ViT:
    """A model with the same weights and some config fields changed."""
    other = build_model(model.cfg.replace(**overrides))
    other.load_state_dict(model.state_dict())
    return other.train(model.training)


class BlockRecorder:
    """Records each block's input shape and output."""

    def __init__(self, model: ViT):
        self.shapes: list[tuple[int, ...]] = []
        self.outputs: list[torch.Tensor] = []
        self.handles = [b.register_forward_hook(self._hook) for b in model.blocks]

    def _hook(self, module, inputs, output):
        self.shapes.append(tuple(inputs[0].shape))
        self.outputs.append(output.detach().clone())

    def close(self) -> None:
        for h in self.handles:
            h.remove()


# --- reordering and schedule --------------------------------------------------------------


@pytest.mark.parametrize("grid,ws", [((8, 12), 4), ((6, 6), 3), ((4, 4), 4), ((2, 6), 1)])
def test_reorder_then_restore_is_identity(grid, ws):
    patches = torch.randn(2, grid[0] * grid[1], 5)
    reordered, order = reorder_patches(patches, grid, ws)
    if ws > 1 and grid != (ws, ws):  # more than one window of more than one patch: order changes
        assert not torch.equal(reordered, patches)
    assert torch.equal(restore_patch_order(reordered, order), patches)
    assert sorted(order.tolist()) == list(range(grid[0] * grid[1]))


def test_window_order_makes_windows_contiguous():
    h, w, ws = 4, 6, 2
    order = window_order((h, w), ws).view(-1, ws * ws)  # one row per window
    assert order.shape == (h * w // ws**2, ws * ws)
    for k, window in enumerate(order.tolist()):
        wy, wx = divmod(k, w // ws)
        expected = [(wy * ws + y) * w + wx * ws + x for y in range(ws) for x in range(ws)]
        assert window == expected
    with pytest.raises(ValueError):
        window_order((4, 6), 4)


def test_schedule_period_and_last_block_global():
    assert vitdet_schedule(6, 2) == (True, True, False, True, True, False)
    assert vitdet_schedule(5, 2) == (True, True, False, True, False)
    assert vitdet_schedule(4, 5) == (True, True, True, False)
    assert vitdet_schedule(4, 1) == (True, False, True, False)
    assert vitdet_schedule(1, 3) == (False,)


# --- window-size sampling --------------------------------------------------------------------


def test_sampled_window_sizes_follow_the_list():
    sizes = (2, 3, 4, 8)
    gen = torch.Generator().manual_seed(1)
    draws = [sample_window_size(sizes, (8, 16), gen) for _ in range(200)]
    assert set(draws) == {2, 4, 8}  # 3 does not tile 8x16
    assert valid_window_sizes(sizes, (6, 9)) == (3,)
    assert {sample_window_size(sizes, (6, 9), gen) for _ in range(20)} == {3}
    assert {sample_window_size(sizes, (7, 7), gen) for _ in range(20)} == {None}  # nothing tiles
    # a window covering the whole grid is global attention
    assert {sample_window_size((8,), (8, 8), gen) for _ in range(5)} == {None}
    # seeded: same generator seed, same sequence; the global RNG works too
    gen_a, gen_b = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [sample_window_size(sizes, (8, 16), gen_a) for _ in range(30)] == [
        sample_window_size(sizes, (8, 16), gen_b) for _ in range(30)
    ]
    torch.manual_seed(3)
    first = [sample_window_size(sizes, (8, 16)) for _ in range(30)]
    torch.manual_seed(3)
    assert first == [sample_window_size(sizes, (8, 16)) for _ in range(30)]


def test_model_draws_a_listed_window_each_training_step():
    model = tiny(vitdet_window_sizes=(2, 3, 4)).train()
    model.window_generator = torch.Generator().manual_seed(0)
    seen = set()
    with torch.no_grad():
        for _ in range(12):
            model(torch.randn(1, 3, 64, 64))  # grid 8x8: 2 and 4 tile it, 3 does not
            seen.add(model.last_window_size)
    assert seen == {2, 4}
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert model.last_window_size is None  # augmentation is off outside training


# --- equivalence with the plain ViT ------------------------------------------------------


@pytest.mark.parametrize("summary_tokens", [0, 2])
def test_augmentation_off_or_whole_grid_window_equals_plain_vit(summary_tokens):
    plain = tiny(num_summary_tokens=summary_tokens).train()
    x = torch.randn(2, 3, 64, 64)  # grid 8x8
    with torch.no_grad():
        ref_summary, ref_features = plain(x)
        cases = {
            "eval mode": twin(plain, vitdet_window_sizes=(2, 4)).eval(),
            "window == grid": twin(plain, vitdet_window_sizes=(8,)),
            "no listed window tiles the grid": twin(plain, vitdet_window_sizes=(3, 5)),
        }
        for name, model in cases.items():
            summary, features = model(x)
            assert model.last_window_size is None, name
            assert torch.equal(summary, ref_summary), name
            assert torch.equal(features, ref_features), name
        windowed = twin(plain, vitdet_window_sizes=(2,))
        summary, features = windowed(x)
        assert windowed.last_window_size == 2
        assert not torch.allclose(features, ref_features, atol=1e-4)


def test_forced_single_window_path_matches_global_attention():
    # The fold/reorder/restore path with one window spanning the grid is plain global attention.
    model = tiny(num_summary_tokens=0, depth=4, vitdet_num_windowed=5).eval()
    square, wide = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 48)  # grids 8x8, 8x6
    with torch.no_grad():
        one_window = model.forward_features(square, window_size=8)
        torch.testing.assert_close(
            one_window, model.forward_features(square, window_size="global"), rtol=1e-5, atol=1e-6
        )
        windowed = model.forward_features(wide, window_size=2)
        assert not torch.allclose(windowed, model.forward_features(wide, window_size="global"), atol=1e-4)


# --- windowed blocks attend within windows; the last block is global ------------------------


def test_windowed_blocks_attend_only_within_their_window_and_last_block_is_global():
    ws, grid = 4, (8, 8)
    model = tiny(num_summary_tokens=2, depth=3, vitdet_num_windowed=5).eval()  # W W G(last)
    x = torch.randn(1, 3, 64, 64)
    x_perturbed = x.clone()
    x_perturbed[..., : ws * 8, : ws * 8] += torch.randn(1, 3, ws * 8, ws * 8)  # window 0's pixels
    runs = []
    for inp in (x, x_perturbed):
        rec = BlockRecorder(model)
        with torch.no_grad():
            tokens = model.forward_features(inp, window_size=ws)
        rec.close()
        runs.append((tokens, rec))
    (tok_a, rec_a), (tok_b, rec_b) = runs
    n_windows = grid[0] * grid[1] // ws**2
    s = 2
    # blocks 0 and 1 are windowed: windows folded into the batch, summary tokens left out
    assert rec_a.shapes == [(n_windows, ws * ws, 32), (n_windows, ws * ws, 32), (1, s + 64, 32)]
    for i in (0, 1):
        out_a, out_b = rec_a.outputs[i], rec_b.outputs[i]
        assert not torch.allclose(out_a[0], out_b[0], atol=1e-4), "perturbed window must change"
        torch.testing.assert_close(out_a[1:], out_b[1:], rtol=0, atol=1e-6)
    # the last block is global: every window and the summary tokens see the perturbation
    last_a = rec_a.outputs[2][0, s:].view(n_windows, ws * ws, 32)
    last_b = rec_b.outputs[2][0, s:].view(n_windows, ws * ws, 32)
    for k in range(n_windows):
        assert not torch.allclose(last_a[k], last_b[k], atol=1e-5), f"window {k} unchanged"
    assert not torch.allclose(rec_a.outputs[2][0, :s], rec_b.outputs[2][0, :s], atol=1e-5)
    # patches come back in input order: unperturbed pixels map to the same output positions as
    # the global path would give for the reordered tokens
    _, order = reorder_patches(torch.zeros(1, 64, 1), grid, ws)
    restored = torch.cat([rec_a.outputs[2][:, :s], restore_patch_order(rec_a.outputs[2][:, s:], order)], 1)
    torch.testing.assert_close(tok_a, model.norm(restored))


def test_summary_tokens_skip_windowed_blocks_and_join_global_ones():
    model = tiny(num_summary_tokens=1, depth=4, vitdet_num_windowed=1).eval()  # W G W G
    rec = BlockRecorder(model)
    with torch.no_grad():
        model.forward_features(torch.randn(2, 3, 64, 64), window_size=2)
    rec.close()
    assert rec.shapes == [(2 * 16, 4, 32), (2, 1 + 64, 32), (2 * 16, 4, 32), (2, 1 + 64, 32)]


def test_vitdet_training_step_backpropagates():
    model = tiny(vitdet_window_sizes=(2, 4), num_summary_tokens=2).train()
    summary, features = model(torch.randn(2, 3, 64, 48))
    (summary.square().mean() + features.square().mean()).backward()
    assert model.last_window_size == 2  # 4 does not tile 8x6
    for name in ("summary_tokens", "pos_embed.weight", "blocks.0.attn.qkv.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


# --- shapes, position embeddings -----------------------------------------------------------


@pytest.mark.parametrize("summary_tokens", [0, 1, 3])
@pytest.mark.parametrize("size", [(64, 64), (48, 96), (128, 40)])
def test_output_shapes(summary_tokens, size):
    model = tiny(num_summary_tokens=summary_tokens, vitdet_window_sizes=(2,))
    h, w = size
    for training in (False, True):
        model.train(training)
        with torch.no_grad():
            summary, features = model(torch.randn(2, 3, h, w))
        assert summary.shape == (2, model.summary_dim) == (2, 32 * max(summary_tokens, 1))
        assert features.shape == (2, model.feature_dim, h // 8, w // 8)
        assert model.patch_size == 8 and model.cfg.family == "vit"


def test_position_embedding_keeps_one_scale_at_any_aspect():
    model = tiny().eval()
    pe = model.pos_embed
    with torch.no_grad():
        full = pe(1, (16, 16)).view(16, 16, 32)
        torch.testing.assert_close(full, pe.weight[0].permute(1, 2, 0))
        square = pe(1, (8, 8)).view(8, 8, 32)
        wide = pe(1, (4, 8)).view(4, 8, 32)
        tall = pe(1, (8, 2)).view(8, 2, 32)
    torch.testing.assert_close(wide, square[:4])
    torch.testing.assert_close(tall, square[:, :2])
    crop = tiny(pos_embed="crop").pos_embed
    with torch.no_grad():
        torch.testing.assert_close(crop(1, (4, 6)).view(4, 6, 32), crop.weight[0, :, :4, :6].permute(1, 2, 0))


def test_cpe_augment_randomises_only_while_training():
    model = tiny(cpe_augment=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.eval()
        a, b = model(x)[1], model(x)[1]
        assert torch.equal(a, b)
        model.train()
        torch.manual_seed(0)
        c = model(x)[1]
        d = model(x)[1]
        torch.manual_seed(0)
        e = model(x)[1]
    assert not torch.allclose(c, d) and torch.equal(c, e)


# --- config --------------------------------------------------------------------------------


def test_presets_and_config_round_trip(tmp_path):
    assert {"vit-t", "vit-s", "vit-b", "vit-l", "vit-h"} <= set(FAMILIES["vit"].presets)
    cfg = resolve_config("vit-s", vitdet_window_sizes=[2, 7])
    assert isinstance(cfg, ViTConfig) and cfg.width == 384 and cfg.vitdet_window_sizes == (2, 7)
    assert ViTConfig.from_dict(cfg.to_dict()) == cfg and ViTConfig.from_dict(cfg.to_dict()).id == cfg.id
    assert cfg.id != cfg.replace(vitdet_num_windowed=3).id
    path = tmp_path / "arch.yaml"
    path.write_text("arch:\n  family: vit\n  width: 48\n  num_heads: 3\n  depth: 2\n")
    model = build_model(path)
    assert isinstance(model, ViT) and model.cfg.width == 48
    assert isinstance(build_model({"preset": "vit-t", "depth": 1}), ViT)


@pytest.mark.parametrize(
    "data,key",
    [
        ({"width": 100, "num_heads": 3}, "num_heads"),
        ({"depth": 0}, "depth"),
        ({"patch_size": 0}, "patch_size"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"num_summary_tokens": -1}, "num_summary_tokens"),
        ({"vitdet_window_sizes": [2, 0]}, "vitdet_window_sizes[1]"),
        ({"vitdet_window_sizes": [40]}, "vitdet_window_sizes[0]"),
        ({"vitdet_window_sizes": 7}, "vitdet_window_sizes"),
        ({"vitdet_num_windowed": 0}, "vitdet_num_windowed"),
        ({"pos_embed": "sincos"}, "pos_embed"),
        ({"heads": 4}, "heads"),
    ],
)
def test_config_errors_name_the_field(data, key):
    with pytest.raises(ConfigError) as info:
        resolve_config({"preset": "vit-t", **data})
    assert info.value.key == key
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="belongs to family"):
        resolve_config({"preset": "vit-t", "family": "eradio"})


def test_input_size_checks():
    cfg = ViTConfig(**{k: v for k, v in TINY.items() if k != "family"})
    cfg.check_input_size(64, 128)
    for h, w in ((60, 64), (64, 0), (136, 64)):  # not a multiple of 8; empty; over 16*8 = 128
        with pytest.raises(ConfigError) as info:
            cfg.check_input_size(h, w)
        assert info.value.key == "resolution"
    model = tiny()
    with pytest.raises(ConfigError, match="resolution"):
        model(torch.randn(1, 3, 60, 64))
    with pytest.raises(ConfigError, match="does not tile"):
        model.forward_features(torch.randn(1, 3, 64, 64), window_size=3)


# --- measurement ---------------------------------------------------------------------------


def test_gmacs_count_every_block_op_including_attention():
    from radio_nas.measure import count_gmacs

    cfg = dict(TINY, num_summary_tokens=2, vitdet_window_sizes=(2,))
    h, w = 64, 96
    n, d, hidden = 2 + (h // 8) * (w // 8), 32, 128  # tokens, width, MLP hidden
    block = (
        n * d * 3 * d
        + n * d * d  # qkv, proj
        + 2 * n * d * hidden  # MLP
        + 2 * n * n * d  # q @ k^T and attn @ v over all heads
        + 2 * 5 * n * d
    )  # two LayerNorms (fvcore: 5 per element with affine)
    deeper, shallower = (count_gmacs(dict(cfg, depth=k), (h, w)) for k in (3, 2))
    assert deeper - shallower == pytest.approx(block / 1e9, rel=1e-6)
    with pytest.raises(ConfigError, match="resolution"):
        count_gmacs(cfg, (60, 64))


@pytest.mark.parametrize("summary_tokens", [0, 2])
def test_export_onnx_parity_and_safetensors_round_trip(tmp_path, summary_tokens):
    from safetensors.torch import load_file, save_file

    from radio_nas.report.export import export_onnx

    model = tiny(num_summary_tokens=summary_tokens, vitdet_window_sizes=(2,)).eval()
    diffs = export_onnx(model, tmp_path / "vit.onnx", (64, 96))
    assert set(diffs) == {"summary", "features"} and max(diffs.values()) < 1e-4
    save_file(model.state_dict(), str(tmp_path / "vit.safetensors"))
    clone = build_model(model.cfg)
    clone.load_state_dict(load_file(str(tmp_path / "vit.safetensors")))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), clone.eval()(x)))
