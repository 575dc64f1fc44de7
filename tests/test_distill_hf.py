"""The ``hf`` teacher adapter against real transformers, offline: tiny DINOv2-with-registers, SAM
and ViT models built from configs, saved with ``save_pretrained`` into a temporary folder (with the
``preprocessor_config.json`` a real checkpoint ships), loaded the way a user's checkpoint folder is,
and run through a real trial from a pipeline YAML. Nothing is downloaded, nothing written under
$HOME (HF_HOME points into the test's folder, HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set)."""

import importlib
import json
import math
import sys

import numpy as np
import pytest
import torch

from radio_nas._config import ConfigError, dump_yaml
from radio_nas.cli import main
from radio_nas.distill.pipeline import TeacherConfig, load_pipeline
from radio_nas.distill.teachers import build_teacher, teacher_fingerprint

HIDDEN, PATCH, REGISTERS = 32, 14, 4
# not ImageNet's, so the test sees they come from the saved processor config
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.125)
TINY_STUDENT = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16, "cpb_hidden": 16}


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """transformers imported with its caches in a temporary folder and the hub switched off."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
            mp.setenv(name, value)
        transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")
        importlib.import_module("huggingface_hub")
        yield transformers


def _processor(path, **entries):
    """What DINOv2's / SAM's image processor saves (written as JSON: their classes want torchvision)."""
    config = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "image_mean": MEAN,
        "image_std": STD,
    }
    (path / "preprocessor_config.json").write_text(json.dumps({**config, **entries}))


@pytest.fixture(scope="module")
def dinov2(hf, tmp_path_factory):
    """A DINOv2-with-registers checkpoint folder: hidden 32, 1 layer, patch 14, 4 registers."""
    path = tmp_path_factory.mktemp("dinov2-reg")
    torch.manual_seed(0)
    config = hf.Dinov2WithRegistersConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=PATCH,
        num_register_tokens=REGISTERS,
    )
    hf.Dinov2WithRegistersModel(config).save_pretrained(path)
    _processor(
        path,
        image_processor_type="BitImageProcessor",
        do_resize=True,
        resample=3,
        size={"shortest_edge": 64},
        do_center_crop=True,
        crop_size={"height": 56, "width": 56},
    )
    return path


def _images(n=2, size=(56, 56), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, *size), dtype=np.uint8)


def _teacher(path, **entries):
    return TeacherConfig.from_dict(
        {"name": "dino", "adapter": "hf", "model": str(path), "summary": {}, "features": {}, **entries}
    )


def test_dinov2_folder_gives_cls_summary_and_patch_map_without_registers(hf, dinov2):
    cfg = _teacher(dinov2)
    # resolution and normalisation come from the saved preprocessor config (its centre crop)
    assert cfg.size == (56, 56) and cfg.mean == MEAN and cfg.std == STD
    teacher = build_teacher(cfg)
    images = _images()
    summary, features = teacher(images)
    assert summary.shape == (2, HIDDEN) and features.shape == (2, HIDDEN, 56 // PATCH, 56 // PATCH)
    x = teacher.preprocess(images)
    white = teacher.preprocess(np.full((1, 3, 56, 56), 255, np.uint8))
    assert torch.allclose(white[0, :, 0, 0], (1 - torch.tensor(MEAN)) / torch.tensor(STD))
    # the same numbers straight from the model: summary = the normed CLS token, features = the
    # patch tokens after CLS and the 4 registers, row-major on the 4x4 grid
    model = hf.AutoModel.from_pretrained(dinov2, local_files_only=True).eval()
    with torch.no_grad():
        out = model(pixel_values=x)
    tokens = out.last_hidden_state
    assert tokens.shape[1] == 1 + REGISTERS + 16
    assert torch.allclose(summary, tokens[:, 0], atol=1e-5)
    assert torch.allclose(features.flatten(2).transpose(1, 2), tokens[:, 1 + REGISTERS :], atol=1e-5)
    # registers are not patches: their tokens are nowhere in the map
    assert not any(torch.allclose(features[0, :, 0, 0], tokens[0, 1 + r], atol=1e-3) for r in range(REGISTERS))


def test_dinov2_other_sizes_and_patch_check(hf, dinov2):
    # a non-square resolution gives a non-square patch grid (position embeddings interpolated)
    summary, features = build_teacher(_teacher(dinov2, resolution=[56, 84]))(_images(size=(56, 84)))
    assert summary.shape == (2, HIDDEN) and features.shape == (2, HIDDEN, 4, 6)
    with pytest.raises(ConfigError, match=r"teachers\.dino\.resolution: expected a multiple of .* patch size 14"):
        build_teacher(_teacher(dinov2, resolution=60))
    # explicit outputs still work: the raw tokens with the prefix counted by hand
    cfg = _teacher(
        dinov2,
        summary={"output": "pooler_output", "layout": "vector"},
        features={"output": "last_hidden_state", "layout": "tokens", "prefix_tokens": 1 + REGISTERS},
    )
    s2, f2 = build_teacher(cfg)(_images(size=(56, 56)))
    s1, f1 = build_teacher(_teacher(dinov2))(_images(size=(56, 56)))
    assert torch.allclose(s1, s2) and torch.allclose(f1, f2)
    # an explicit mean/std wins over the saved one
    assert _teacher(dinov2, mean=[0, 0, 0], std=[1, 1, 1]).mean == (0.0, 0.0, 0.0)


def test_fingerprint_follows_the_folder_contents(hf, dinov2, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in dinov2.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert teacher_fingerprint(_teacher(copy)) == teacher_fingerprint(_teacher(dinov2))
    model = hf.AutoModel.from_pretrained(copy, local_files_only=True)
    with torch.no_grad():
        model.layernorm.weight.add_(1.0)
    model.save_pretrained(copy)  # other weights, same path: the cache must not reuse old outputs
    assert teacher_fingerprint(_teacher(copy)) != teacher_fingerprint(_teacher(dinov2))


def test_sam_folder_uses_the_image_encoder(hf, tmp_path):
    vision = hf.SamVisionConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_dim=64,
        image_size=64,
        patch_size=16,
        output_channels=16,
        window_size=2,
        global_attn_indexes=[0],
    )
    hf.SamModel(hf.SamConfig(vision_config=vision.to_dict())).save_pretrained(tmp_path)
    _processor(tmp_path, image_processor_type="SamImageProcessor", size={"longest_edge": 64}, pad_size=64)
    cfg = _teacher(tmp_path, features={"grid": [2, 2]})
    assert cfg.size == (64, 64)
    summary, features = build_teacher(cfg)(_images(size=(64, 64)))
    assert summary.shape == (2, 16) and features.shape == (2, 16, 2, 2)  # 4x4 embeddings pooled to 2x2
    assert torch.allclose(summary, features.mean((2, 3)), atol=1e-5)
    with pytest.raises(ConfigError, match=r"teachers\.dino\.resolution: SamModel takes 64x64 inputs"):
        build_teacher(_teacher(tmp_path, resolution=128))
    with pytest.raises(ConfigError, match=r"teachers\.dino\.method: SamModel has no method 'nope'"):
        build_teacher(_teacher(tmp_path, method="nope"))


def test_vit_at_another_resolution_and_load_errors(hf, tmp_path):
    config = hf.ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=16
    )
    hf.ViTModel(config).to(torch.bfloat16).save_pretrained(tmp_path / "vit")  # loaded in bf16 as saved
    cfg = _teacher(tmp_path / "vit", resolution=64)  # no processor config saved: ImageNet constants
    assert cfg.mean == (0.485, 0.456, 0.406)
    summary, features = build_teacher(cfg)(_images(size=(64, 64)))
    assert summary.shape == (2, 32) and features.shape == (2, 32, 4, 4)  # 64 px, not the trained 32
    assert summary.dtype == features.dtype == torch.float32
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"teachers\.dino\.model: transformers cannot load"):
        build_teacher(_teacher(tmp_path / "empty", resolution=64))
    with pytest.raises(ConfigError, match=r"^model: no such folder: /no/such/checkpoint$"):
        _teacher("/no/such/checkpoint")
    # a hub id while offline and not cached: a one-line error instead of a download attempt
    with pytest.raises(ConfigError, match=r"model: cannot read preprocessor_config.json of 'nobody/nothing'"):
        _teacher("nobody/nothing")


def test_real_trial_with_a_saved_hf_teacher_from_the_cli(hf, dinov2, tmp_path, capsys):
    pipeline = load_pipeline("distill_cpu").to_dict()
    pipeline["teachers"] = [
        {"name": "dinov2", "adapter": "hf", "model": str(dinov2), "summary": {}, "features": {}, "batch_size": 8}
    ]
    (tmp_path / "hf.yaml").write_text(dump_yaml(pipeline))
    (tmp_path / "tiny.yaml").write_text(dump_yaml(TINY_STUDENT))
    sets = {
        "resolution": 64,
        "steps": 4,
        "batch_size": 4,
        "data.train_size": 16,
        "data.eval_size": 8,
        "eval.every": 2,
        "eval.size": 8,
        "eval.knn": False,
        "adaptor.hidden": 32,
        "cache.dir": str(tmp_path / "cache"),
    }
    args = ["trial", str(tmp_path / "hf.yaml"), "--arch", str(tmp_path / "tiny.yaml"), "--json", "--quiet"]
    args += [x for k, v in sets.items() for x in ("--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}")]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert captured.err == ""  # --quiet: not even transformers' weight-loading bar
    assert out["status"] == "ok" and out["steps"] == 4 and out["cache_hit"] is False
    assert math.isfinite(out["fidelity"])
    for part in ("summary", "features"):
        assert math.isfinite(out[f"fidelity/dinov2/{part}"])
    assert [p["step"] for p in out["fidelity_curve"]] == [2, 4]
    # the cache holds the teacher's shapes from its config: 32-d summary, 4x4 patch grid at 56 px
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/meta.json")]
    [meta] = [m for m in metas if m["split"] == "eval"]
    assert meta["resolution"] == [56, 56] and meta["features_shape"][1:] == [HIDDEN, 4, 4]
    assert main(args) == 0  # warm: the same folder and preprocessing hit the cache
    assert json.loads(capsys.readouterr().out)["cache_hit"] is True
    # a folder that is not there: exit 2 and one line naming the key
    assert main(args + ["--set", f"teachers[0].model={tmp_path / 'gone'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "teachers[0].model: no such folder" in err, err


def test_without_the_extra_the_error_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an install without [hf] looks like
    with pytest.raises(ConfigError, match=r"^teachers\.dino\.adapter: .* needs the transformers package .*\[hf\]"):
        build_teacher(_teacher(tmp_path, resolution=56))
