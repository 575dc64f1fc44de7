"""benchmarks/gpu_check.py: the GPU truth check cannot rot while no GPU is lent.

The dry run is the same script on the CPU with a tiny variant; these tests check that every section
runs and reports the fields the GPU run will fill, with finite numbers. No figure is asserted
against a time: CPU timings here mean nothing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _strict_json(path: Path) -> dict[str, Any]:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite number {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RADIO_NAS_CACHE"}
    env.update(
        HOME=str(home),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        OMP_WAIT_POLICY="PASSIVE",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="disabled",
    )
    return env


def _check_latency(stats: dict[str, Any], batch: int, repeats: int) -> None:
    assert stats["status"] == "ok"
    for key in ("median_ms", "p90_ms", "images_per_s", "peak_memory_mb", "cv_pct"):
        assert _positive(stats[key]) or key == "cv_pct" and stats[key] == 0, (key, stats)
    assert len(stats["medians_ms"]) == stats["repeats"] == repeats
    assert all(_positive(m) for m in stats["medians_ms"])
    # every repeat's p90 >= its median, so the median of p90s >= the median of medians
    assert stats["p90_ms"] >= stats["median_ms"]
    assert stats["images_per_s"] == pytest.approx(batch / stats["median_ms"] * 1e3)
    assert stats["device_name"]


@pytest.mark.slow
def test_dry_run_reports_every_section(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        check=False,
        cwd=tmp_path,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = _strict_json(out / "gpu_check.json")
    plan = report["plan"]
    sections = report["sections"]
    assert report["dry_run"] is True
    assert list(sections) == ["environment", "cli", "latency", "compile", "trial", "sweep"]
    assert {name: s["status"] for name, s in sections.items()} == dict.fromkeys(sections, "ok")

    env = sections["environment"]
    for key in ("python", "torch", "device_name", "cpu", "versions", "libraries"):
        assert env[key], key
    assert env["device"] == "cpu" and env["driver"] is None and env["gpu"] is None

    prof = sections["cli"]["profile"]
    assert prof["returncode"] == 0 and prof["argv"][:3] == ["-m", "radio_nas", "profile"]
    assert _positive(prof["params"]) and _positive(prof["gmacs"])
    lat = prof["latency"]
    assert (lat["device"], lat["dtype"], lat["channels_last"]) == ("cpu", "bf16", True)
    assert _positive(lat["median_ms"]) and lat["p90_ms"] >= lat["median_ms"] and _positive(lat["images_per_s"])
    bench = sections["cli"]["bench_presets"]
    assert bench["returncode"] == 0 and any(line.startswith("| xt |") for line in bench["stdout"])

    rows = sections["latency"]["rows"]
    expected = {(b, d, cl) for b in plan["batches"] for d in plan["dtypes"] for cl in plan["layouts"]}
    assert {(r["batch"], r["dtype"], r["channels_last"]) for r in rows} == expected
    assert len(rows) == len(expected) * len(plan["presets"]) * len(plan["resolutions"])
    for r in rows:
        _check_latency(r, r["batch"], plan["repeats"])
        assert r["runs"] == 2 and r["window"] == [2, 2]  # 64 px: min(H, W)/32 = 2

    comp = sections["compile"]
    assert len(comp["rows"]) == len(plan["compile_batches"])
    for r in comp["rows"]:
        _check_latency(r["eager"], r["batch"], plan["repeats"])
        _check_latency(r["compiled"], r["batch"], plan["repeats"])
        assert _positive(r["compile_s"]) and _positive(r["speedup"]) and len(r["speedups"]) == plan["repeats"]
        assert r["dynamo_graphs"] >= 1 and r["dynamo_graph_breaks"] >= 0

    trial = sections["trial"]
    cold, warm = trial["runs"]
    assert (cold["cache"], warm["cache"]) == ("cold", "warm")
    assert cold["status"] == warm["status"] == "ok"
    assert trial["cache_hit_first"] is False and trial["cache_hit_second"] is True
    for run in (cold, warm):
        assert run["steps"] == plan["trial_overrides"]["steps"]
        for key in ("steps_per_s", "images_per_s", "wall_s", "fidelity_cos"):
            assert _positive(run[key]), (key, run)
        assert math.isfinite(run["fidelity"])  # normalised against the constant predictor: may be < 0
    assert trial["steps_per_s"] == warm["steps_per_s"]
    assert Path(trial["overrides"]["cache.dir"]).is_relative_to(out)

    sweep = sections["sweep"]
    assert sweep["latency_settings"]["dtype"] == "bf16"
    assert sweep["latency_settings"]["device"] == plan["device"]
    assert Path(sweep["results_dir"]).is_relative_to(out)
    ok = [t for t in sweep["trials"] if t["status"] == "ok"]
    assert len(ok) == sweep["target"] == plan["sweep_overrides"]["budget.trials"]
    for t in ok:
        assert _positive(t["latency_ms"]) and t["latency_device"] and math.isfinite(t["fidelity"])

    table = (out / "gpu_check.md").read_text()
    assert table.strip() == proc.stdout[proc.stdout.index("# gpu_check") :].split("\nJSON:")[0].strip()
    for section in ("| cli |", "| latency |", "| compile |", "| trial |", "| sweep |"):
        assert section in table
    # caches, results and compiler files went under --out: nothing under $HOME
    assert not any(home.iterdir()), sorted(p.name for p in home.iterdir())


def test_gpu_plan_covers_the_issue() -> None:
    plan = _load().gpu_plan()
    assert plan.device == "cuda"
    assert list(plan.presets) == ["xt", "t", "b", "l", "l-v2"]
    assert plan.resolutions == (224, 512) and plan.batches == (1, 64)
    assert plan.dtypes == ("fp32", "bf16") and plan.layouts == (False, True)
    assert plan.repeats == 5 and plan.compile_backend == "inductor"
    assert plan.trial_arch == "t" and plan.trial_overrides["steps"] == 20
    assert plan.trial_overrides["student"] == {"device": "cuda", "amp": True, "channels_last": True, "threads": None}
    assert plan.sweep_overrides["latency.device"] == "cuda" and plan.sweep_overrides["latency.dtype"] == "bf16"
    assert plan.sweep_overrides["budget.trials"] == 3 and plan.sweep_overrides["resources.gpu"] == 1
    # the plans' overrides load through the project's own validation
    from radio_nas.distill import load_pipeline
    from radio_nas.search import load_space

    pipeline = load_pipeline(ROOT / "pipelines" / "distill_cpu.yaml", plan.trial_overrides)
    assert pipeline.student.device == "cuda" and all(t.device == "cuda" for t in pipeline.teachers)
    space = load_space(ROOT / plan.sweep_space, plan.sweep_overrides)
    assert space.config.latency.device == "cuda" and space.pipeline.student.amp is True


def test_windows_follow_the_reference_rule() -> None:
    gc = _load()
    assert gc.arch_config("l-v2", 224, 224).windows_for(224, 224) == (7, 7)
    assert gc.arch_config("l-v2", 512, 512).windows_for(512, 512) == (16, 16)
    assert gc.arch_config("t", 512, 512).windows_for(512, 512) == (16, 16)
    assert gc.arch_config(gc.TINY, 64, 64).windows_for(64, 64) == (2, 2)


@pytest.mark.slow  # runs a tiny trial in-process
def test_one_failing_section_does_not_stop_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gc = _load()
    for var in ("RADIO_NAS_CACHE", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, "unset-by-test")  # main() sets them; monkeypatch restores them

    def broken(*args: Any) -> None:
        raise RuntimeError("planted failure")

    monkeypatch.setattr(gc, "compile_check", broken)
    rc = gc.main(["--dry-run", "--out", str(tmp_path), "--sections", "compile,trial"])
    report = _strict_json(tmp_path / "gpu_check.json")
    assert rc == 1
    assert report["sections"]["compile"]["status"] == "failed"
    assert "planted failure" in report["sections"]["compile"]["error"]
    assert report["sections"]["trial"]["status"] == "ok"
    assert "latency" not in report["sections"] and "sweep" not in report["sections"]
    assert "| compile | section failed |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sections", "latency,bogus"], "--sections: unknown ['bogus']"),
        ([], "no CUDA device here"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    import torch

    if not args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), *args],
        check=False,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
