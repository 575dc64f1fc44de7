"""Export -> rebuild round trip, weights-only loading, ONNX parity (onnxruntime vs PyTorch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from test_report_study import make_study


def test_export_pareto_rebuilds_same_model_with_weights(tmp_path: Path) -> None:
    from radio_nas.models import build_model, resolve_config
    from radio_nas.report.export import export_trials, pareto_numbers
    from radio_nas.report.study_table import open_study
    from radio_nas.report.weights import load_student

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


def test_export_rejects_unfinished_trials_and_missing_weights(tmp_path: Path) -> None:
    from radio_nas._config import ConfigError
    from radio_nas.report.export import export_trials
    from radio_nas.report.study_table import open_study

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


def test_export_cli_with_onnx(tmp_path: Path, capsys) -> None:
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
