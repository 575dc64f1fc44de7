"""The CUDA paths: deployed-model parity with the CPU, a bf16 trial, latency timed with CUDA events and
recorded with the device's name, and a sweep whose latency objective is a GPU number.

Marked ``gpu``: ``python -m pytest -q -m gpu`` runs only these. Without a CUDA device each one skips,
so the default run collects them and reports them as skipped.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from radio_nas.cli import main
from radio_nas.distill import load_pipeline, run_trial
from radio_nas.measure.latency import cached_latency, measure_latency
from radio_nas.models import build_model, deploy_model, resolve_config
from radio_nas.search.space import LatencySettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parents[1]
# every code path of E-RADIO (two MRA ratios, position bias, fusion) in a model that builds in a second
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16, "cpb_hidden": 16}
# 64x96: stage maps 4x6 and 2x3, which the windows do not tile, so both window_fit rules do work
RESOLUTION = (64, 96)


@pytest.fixture
def exact_fp32():
    """TF32 off for the duration of a test, so CUDA fp32 is comparable with the CPU to fp32 rounding."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("window_fit", ["pad_mask", "resize"])
def test_deployed_model_on_cuda_matches_the_cpu_and_the_training_graph(window_fit, exact_fp32):
    torch.manual_seed(0)
    model = build_model(resolve_config(TINY, window_fit=window_fit, window_sizes=[4, 4]), resolution=RESOLUTION)
    model.eval()
    x = torch.randn(2, 3, *RESOLUTION)
    with torch.inference_mode():
        ref_summary, ref_features = model(x)  # training graph, eval mode, CPU
        deployed = deploy_model(model).cuda()
        summary, features = deployed(x.cuda())
        train_graph = model.cuda()(x.cuda())
    assert features.shape == ref_features.shape and features.device.type == "cuda"
    assert _relative(summary.cpu(), ref_summary) < 1e-4
    assert _relative(features.cpu(), ref_features) < 1e-4
    assert _relative(features, train_graph[1]) < 1e-4  # folding BatchNorm on the GPU changes nothing


def test_bf16_trial_trains_the_student_on_cuda(tmp_path):
    overrides = {
        "resolution": 64,
        "batch_size": 4,
        "steps": 6,
        "data.train_size": 24,
        "data.eval_size": 8,
        "eval.size": 8,
        "eval.every": 3,
        "eval.knn": False,
        "cache.dir": str(tmp_path / "teachers"),
        "student.device": "cuda",
        "student.amp": True,  # bf16 autocast for the student forward
        "student.channels_last": True,
    }
    pipeline = load_pipeline(ROOT / "pipelines/distill_cpu.yaml", overrides)
    torch.cuda.reset_peak_memory_stats()
    result = run_trial(pipeline, TINY)
    assert result.ok, result.failure_reason
    assert torch.cuda.max_memory_allocated() > 0  # the student did run on the GPU
    assert result.steps == 6 and len(result.loss_curve) == 6
    assert all(math.isfinite(v) for v in result.loss_curve)
    assert result.fidelity is not None and math.isfinite(result.fidelity) and result.fidelity <= 1
    assert result.images_per_s is not None and result.images_per_s > 0


class _CountingEvent(torch.cuda.Event):
    """A CUDA event that remembers every elapsed time it was asked for."""

    elapsed: list[float] = []

    def elapsed_time(self, end_event):  # type: ignore[override]
        ms = super().elapsed_time(end_event)
        _CountingEvent.elapsed.append(ms)
        return ms


def test_cuda_latency_is_timed_with_cuda_events(monkeypatch):
    _CountingEvent.elapsed = []
    monkeypatch.setattr(torch.cuda, "Event", _CountingEvent)
    model = build_model(TINY, resolution=RESOLUTION)
    result = measure_latency(model, RESOLUTION, batch_size=2, device="cuda", warmup=2, runs=7)
    assert len(_CountingEvent.elapsed) == 7  # one start/end pair per timed run, nothing else
    assert result.median_ms == pytest.approx(statistics.median(_CountingEvent.elapsed))
    assert all(ms > 0 for ms in _CountingEvent.elapsed)
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 0  # the allocator's peak


def test_latency_is_recorded_with_the_device_name(tmp_path):
    name = torch.cuda.get_device_name()
    cfg = resolve_config(TINY)
    settings = LatencySettings(device="cuda", dtype="bf16", channels_last=True, runs=5, warmup=2)
    result = cached_latency(cfg, tmp_path, RESOLUTION, settings)
    assert (result.device, result.device_name, result.dtype, result.channels_last) == ("cuda", name, "bf16", True)
    cached = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert len(cached) == 1 and cached[0]["device_name"] == name and cached[0]["median_ms"] == result.median_ms


def test_profile_command_on_cuda(capsys):
    args = ["profile", "xt", "--set", "width=16", "--set", "depths=[1,1,1,1]", "--resolution", "64x96"]
    assert main([*args, "--device", "cuda", "--dtype", "bf16", "--channels-last", "--runs", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    latency = out["latency"]
    assert latency["device"] == "cuda" and latency["device_name"] == torch.cuda.get_device_name()
    assert latency["dtype"] == "bf16" and latency["median_ms"] > 0 and latency["peak_memory_mb"] > 0


@pytest.mark.slow
def test_sweep_latency_objective_is_a_gpu_number(tmp_path, capsys):
    from radio_nas.study.storage import open_study

    results = tmp_path / "smoke-gpu"
    sets = {
        "latency.device": "cuda",
        "latency.dtype": "bf16",
        "resources.gpu": "1",
        "pipeline.overrides.student.device": "cuda",
    }
    args = ["--results", str(results), "--trials", "1", *(f"--set={key}={value}" for key, value in sets.items())]
    assert main(["sweep", str(ROOT / "search_spaces/smoke.yaml"), *args]) == 0
    capsys.readouterr()
    trials = [t for t in open_study(results).study.trials if t.user_attrs.get("status") == "ok"]
    assert len(trials) == 1
    attrs = trials[0].user_attrs
    assert attrs["latency_device"] == torch.cuda.get_device_name() and attrs["latency_ms"] > 0
