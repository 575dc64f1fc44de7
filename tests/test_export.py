"""Export -> rebuild round trip, weights-only loading, ONNX parity (onnxruntime vs PyTorch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml


def test_export_pareto_rebuilds_same_model_with_weights(tmp_path: Path, make_study) -> None:
    from radio_nas.models import build_model, resolve_config
    from radio_nas.report.export import export_trials, pareto_numbers
    from radio_nas.report.weights import load_student
    from radio_nas.study import open_study

    handle = open_study(make_study(tmp_path))
    numbers = pareto_numbers(handle)
    assert numbers
    done = export_trials(handle, numbers, weights=True)
    assert [d.trial for d in done] == numbers
    for item in done:
        doc = yaml.safe_load(item.yaml_path.read_text())
        assert set(doc) >= {"arch", "pipeline", "metrics", "provenance", "files"}
        assert doc["provenance"]["trial"] == item.trial and doc["provenance"]["study"] == "tiny"
        trial = handle.study.trials[item.trial]
        cfg = resolve_config(item.yaml_path)
        assert cfg.id == trial.user_attrs["arch_id"] == item.arch_id
        rebuilt = build_model(item.yaml_path)
        assert sum(p.numel() for p in rebuilt.parameters()) == item.n_params
        assert doc["metrics"]["fidelity"] == pytest.approx(trial.values[0])
        # weights: copied next to the YAML and loaded weights-only into the rebuilt model
        assert item.weights_path == item.yaml_path.with_suffix(".safetensors")
        model = load_student(item.yaml_path, item.weights_path)
        from safetensors.torch import load_file

        original = load_file(str(handle.results_dir / trial.user_attrs["weights_path"]))
        for key, value in model.state_dict().items():
            assert torch.equal(value, original[f"student.{key}"])
        assert "adaptors.t0.summary.weight" in load_file(str(item.weights_path))


def test_export_rejects_unfinished_trials_and_missing_weights(tmp_path: Path, make_study) -> None:
    from radio_nas._config import ConfigError
    from radio_nas.report.export import export_trials
    from radio_nas.study import open_study

    handle = open_study(make_study(tmp_path, weights=False))
    with pytest.raises(ConfigError, match="not fully trained"):
        export_trials(handle, [6])  # the failed trial
    with pytest.raises(ConfigError, match="no trial 99"):
        export_trials(handle, [99])
    with pytest.raises(ConfigError, match="kept no weights"):
        export_trials(handle, [0], weights=True)
    assert not (handle.results_dir / "exported" / "tiny-trial0.yaml").exists()


def test_weights_that_do_not_fit_fail_loudly(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from radio_nas._config import ConfigError
    from radio_nas.report.weights import load_student

    bad = tmp_path / "bad.safetensors"
    save_file({"stem.0.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(ConfigError, match="do not fit"):
        load_student({"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}, bad)


@pytest.mark.parametrize("resolution", [(64, 64), (64, 96)])
def test_onnx_matches_pytorch(tmp_path: Path, resolution: tuple[int, int]) -> None:
    from radio_nas.models import build_model
    from radio_nas.report.export import export_onnx

    torch.manual_seed(0)
    model = build_model({"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16})
    diffs = export_onnx(model, tmp_path / "m.onnx", resolution)
    assert set(diffs) == {"summary", "features"}
    assert max(diffs.values()) < 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    shapes = [o.shape for o in session.get_outputs()]
    assert shapes[1] == [1, 64, resolution[0] // 16, resolution[1] // 16]


def test_onnx_parity_failure_is_loud(tmp_path: Path) -> None:
    from radio_nas.models import build_model
    from radio_nas.report.export import OnnxParityError, export_onnx

    class Noisy(torch.nn.Module):
        """Adds fresh noise on every call, so ONNX and PyTorch cannot agree."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = build_model({"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16})

        def forward(self, x: torch.Tensor):
            s, f = self.inner(x)
            return s + torch.rand_like(s), f

    with pytest.raises(OnnxParityError, match="differs"):
        export_onnx(Noisy(), tmp_path / "n.onnx", (64, 64))
    assert not (tmp_path / "n.onnx").exists()


def test_export_cli_with_onnx(tmp_path: Path, capsys, make_study) -> None:
    import json

    from radio_nas.cli import main

    results = make_study(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(results), "--trial", "1", "--out", str(out), "--weights", "--onnx", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (item,) = payload["exported"]
    assert Path(item["onnx"]).is_file() and item["onnx_resolution"] == [64, 64]
    assert max(item["onnx_max_abs_diff"].values()) < 1e-4
    assert main(["export", str(results), "--trial", "7"]) == 2  # pruned: one-line error
    assert "not fully trained" in capsys.readouterr().err


def test_export_checkpoint_published_layout_to_yaml_safetensors_onnx(tmp_path: Path, capsys) -> None:
    import hashlib
    import json

    from test_models_published import SMALL, _random_state, published_layout

    from radio_nas._config import dump_yaml
    from radio_nas.cli import main
    from radio_nas.models.published import load_published_eradio
    from radio_nas.report.weights import load_student

    state = _random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256))
    ckpt = tmp_path / "eradio_small.pth.tar"  # as published: prefixed and wrapped
    torch.save({"state_dict": {f"base_model.{k}": v for k, v in state.items()}}, ckpt)
    arch = tmp_path / "small.yaml"
    arch.write_text(dump_yaml({**SMALL, "pretrained_window": 16}))
    out = tmp_path / "out"
    args = ["export", str(arch), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main([*args, "--onnx", "--onnx-resolution", "64", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["exported"]
    assert item["trial"] is None and Path(item["yaml"]) == out / "eradio_small.yaml"
    doc = yaml.safe_load(Path(item["yaml"]).read_text())
    assert doc["provenance"]["checkpoint_layout"] == "published E-RADIO v2"
    assert doc["provenance"]["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert doc["arch"]["pretrained_window"] == 16 and max(item["onnx_max_abs_diff"].values()) < 1e-4
    # the exported pair rebuilds the published model: same features as loading the checkpoint directly
    exported = load_student(item["yaml"], item["weights"])
    # the exported YAML is the arch as given (auto windows, pad_mask), not the loader's reference default
    direct = load_published_eradio(ckpt, {**SMALL, "pretrained_window": 16}, window_sizes="auto", window_fit="pad_mask")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(exported(x)[1], direct(x)[1])
    # and it exports again as a radio-nas student of its own
    assert main(["export", item["yaml"], "--checkpoint", item["weights"], "--out", str(tmp_path / "again")]) == 0
    assert "[" + doc["provenance"]["arch_id"] in capsys.readouterr().out


def test_export_checkpoint_errors_are_one_line(tmp_path: Path, capsys) -> None:
    from test_models_published import SMALL, _random_state, published_layout

    from radio_nas._config import dump_yaml
    from radio_nas.cli import main

    ckpt = tmp_path / "published.pt"
    torch.save(_random_state(published_layout(32, 32, (1, 3, 4, 5), (8, 16), 256)), ckpt)
    no_window = tmp_path / "no_window.yaml"
    no_window.write_text(dump_yaml(SMALL))
    shallower = tmp_path / "shallower.yaml"
    shallower.write_text(dump_yaml({**SMALL, "pretrained_window": 16, "depths": [1, 3, 3, 5]}))
    out = str(tmp_path / "out")
    cases = [
        (["export", str(no_window), "--checkpoint", str(ckpt), "--out", out], "needs pretrained_window: 16"),
        (["export", str(shallower), "--checkpoint", str(ckpt), "--out", out], "does not have"),
        (["export", "xt", "--checkpoint", str(ckpt), "--out", out], "needs pretrained_window"),
        (["export", "l-v2", "--checkpoint", str(tmp_path / "none.pt"), "--out", out], "--checkpoint: no such file"),
        (["export", "l-v2", "--checkpoint", str(ckpt), "--trial", "1"], "--trial"),
        (["export", str(tmp_path)], "choose trials with --pareto or --trial"),
    ]
    for args, text in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1, err
    assert not list((tmp_path / "out").glob("*.yaml"))
