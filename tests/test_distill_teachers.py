"""Teacher adapters tested with what exists offline: the bundled ONNX ResNet-50 (intermediate
outputs), a TorchScript file saved here, a torch.hub entry in a local hub folder (Hugging Face
checkpoints: test_distill_hf.py)."""

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from radio_nas._config import ConfigError
from radio_nas.distill.pipeline import TeacherConfig
from radio_nas.distill.teachers import OnnxTeacher, build_teacher

NSFW = {
    "adapter": "onnx",
    "model": "opennsfw",
    "channels": "bgr",
    "layout": "nhwc",
    "value_range": 255,
    "mean": [104, 117, 123],
    "std": [1, 1, 1],
}


def _images(n=2, size=224, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def test_onnx_intermediate_outputs_and_shared_forward():
    a = TeacherConfig.from_dict(
        {**NSFW, "name": "s16", "summary": {"output": "Add_12:0"}, "features": {"output": "Add_12:0"}}
    )
    b = TeacherConfig.from_dict(
        {**NSFW, "name": "s32", "summary": {"output": "Add_15:0"}, "features": {"output": "Add_15:0"}}
    )
    runners = {}
    ta, tb = build_teacher(a, runners, (a, b)), build_teacher(b, runners, (a, b))
    assert isinstance(ta, OnnxTeacher) and ta.runner is tb.runner
    calls = []
    run = ta.runner.session.run
    ta.runner.session.run = lambda *args, **kw: calls.append(1) or run(*args, **kw)  # type: ignore[method-assign]
    x = _images()
    s16, f16 = ta(x)
    s32, f32 = tb(x)  # same batch: served from the shared forward
    assert len(calls) == 1
    assert f16.shape == (2, 512, 14, 14) and s16.shape == (2, 512)
    assert f32.shape == (2, 1024, 7, 7) and s32.shape == (2, 1024)
    assert torch.allclose(s16, f16.mean((2, 3)), atol=1e-5)
    # the teacher resizes to its own resolution: a 112 px batch is accepted
    _, f_small = ta(_images(size=112))
    assert f_small.shape == (2, 512, 14, 14)
    # preprocessing: BGR, 0..255 minus caffe means, NHWC
    xin = ta.preprocess(x)
    assert xin.shape == (2, 224, 224, 3)
    assert float(xin[0, 0, 0, 0]) == pytest.approx(float(x[0, 2, 0, 0]) - 104)


def test_onnx_unknown_output_names_the_key():
    bad = TeacherConfig.from_dict(
        {**NSFW, "name": "bad", "summary": {"output": "Add_99:0"}, "features": {"output": "Add_12:0"}}
    )
    with pytest.raises(ConfigError, match=r"teachers\.bad\.summary\.output: open-nsfw.onnx has no tensor 'Add_99:0'"):
        build_teacher(bad)
    missing = TeacherConfig.from_dict(
        {**NSFW, "name": "m", "model": "/nope.onnx", "summary": {"output": "x"}, "features": {"output": "x"}}
    )
    with pytest.raises(ConfigError, match=r"teachers\.m\.model: no such ONNX file"):
        build_teacher(missing)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8)

    def forward(self, x):
        f = self.conv(x)
        tokens = torch.cat([f.mean((2, 3))[:, None], f.flatten(2).transpose(1, 2)], 1)  # CLS + patches
        return {"cls": tokens[:, 0], "tokens": tokens}


def test_torchscript_adapter_with_a_saved_file(tmp_path):
    torch.manual_seed(0)
    module = _Tiny().eval()
    path = tmp_path / "tiny.pt"
    torch.jit.script(module).save(str(path))
    cfg = TeacherConfig.from_dict(
        {
            "name": "ts",
            "adapter": "torchscript",
            "model": str(path),
            "resolution": 64,
            "summary": {"output": "cls", "layout": "vector"},
            "features": {"output": "tokens", "layout": "tokens", "prefix_tokens": 1},
        }
    )
    teacher = build_teacher(cfg)
    x = _images(size=64)
    summary, features = teacher(x)
    with torch.no_grad():
        ref = module(teacher.preprocess(x))
    assert torch.allclose(summary, ref["cls"], atol=1e-5)
    assert features.shape == (2, 8, 8, 8)
    assert torch.allclose(features, ref["tokens"][:, 1:].transpose(1, 2).reshape(2, 8, 8, 8), atol=1e-5)
    assert teacher.fingerprint.startswith("torchscript:") and len(teacher.fingerprint) > 40
    # pooled CLS summary from tokens, and a feature grid pooled smaller (as for SAM)
    cfg2 = cfg.replace(
        summary={"output": "tokens", "layout": "tokens", "pool": "cls"},
        features={"output": "tokens", "layout": "tokens", "prefix_tokens": 1, "grid": [4, 4]},
    )
    s2, f2 = build_teacher(cfg2)(x)
    assert torch.allclose(s2, ref["cls"], atol=1e-5) and f2.shape == (2, 8, 4, 4)


def test_torch_hub_adapter_with_a_local_hub_dir(tmp_path):
    (tmp_path / "hubconf.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn
        dependencies = ["torch"]

        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.conv = nn.Conv2d(3, width, 16, stride=16)
            def forward_features(self, x):
                f = self.conv(x)
                return {"x_norm_clstoken": f.mean((2, 3)), "x_norm_patchtokens": f.flatten(2).transpose(1, 2)}

        def tiny_dino(width=4):
            torch.manual_seed(0)
            return Net(width)
    """)
    )
    cfg = TeacherConfig.from_dict(
        {
            "name": "hub",
            "adapter": "torch_hub",
            "model": f"{tmp_path}:tiny_dino",
            "method": "forward_features",
            "kwargs": {"width": 6},
            "resolution": 64,
            "summary": {"output": "x_norm_clstoken", "layout": "vector"},
            "features": {"output": "x_norm_patchtokens", "layout": "tokens"},
        }
    )
    summary, features = build_teacher(cfg)(_images(size=64))
    assert summary.shape == (2, 6) and features.shape == (2, 6, 4, 4)
    assert torch.allclose(summary, features.mean((2, 3)), atol=1e-5)


def test_optional_extras_fail_with_a_clear_config_error():
    for adapter in ("timm", "open_clip", "hf"):
        try:
            __import__({"timm": "timm", "open_clip": "open_clip", "hf": "transformers"}[adapter])
            continue  # installed: nothing to check here
        except ImportError:
            pass
        cfg = TeacherConfig.from_dict(
            {"name": "x", "adapter": adapter, "model": "m", "summary": {"layout": "vector"}, "features": {}}
        )
        with pytest.raises(ConfigError, match=rf"teachers\.x\.adapter: adapter '{adapter}' needs"):
            build_teacher(cfg)
