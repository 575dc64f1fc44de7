"""Distillation-trial benchmark: one trial cold vs warm teacher cache (time split), student training
throughput (img/s) and achieved GFLOP/s against this machine's 2048x2048 fp32 matmul GFLOP/s.

    python benchmarks/bench_trial.py                       # xt and t, pipelines/distill_cpu.yaml
    python benchmarks/bench_trial.py --archs xt --steps 10 --json

Training FLOPs are estimated as 3 x forward MACs x 2 (forward + backward ~ 3 forwards; fvcore counts
multiply-adds). The student's GMACs come from radio_nas.measure.count_gmacs at the pipeline's crop
size; adaptor heads and loss are not counted (they are small), so GFLOP/s is a slight underestimate.
The load average is printed because these machines are shared: figures scale with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def matmul_gflops(n: int = 2048, runs: int = 10, threads: int | None = None) -> float:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(before)
    return 2 * n**3 / statistics.median(times) / 1e9


def machine() -> dict[str, str]:
    from importlib.metadata import version

    from radio_nas.measure import cpu_model
    from radio_nas.measure.profile import versions

    cpu = cpu_model()

    extra = {name: version(name) for name in ("onnxruntime", "numpy")}
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "load_avg_1m": f"{os.getloadavg()[0]:.2f}",
        "python": platform.python_version(),
        **{k: str(v) for k, v in versions().items()},
        **extra,
    }


def bench(arch: str, pipeline_path: str, steps: int | None, yardstick: float) -> list[dict]:
    from radio_nas.distill import load_pipeline, run_trial
    from radio_nas.measure import count_gmacs

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        overrides = {"cache.dir": cache, **({"steps": steps} if steps is not None else {})}
        pipeline = load_pipeline(pipeline_path, overrides)
        gmacs = count_gmacs(arch, resolution=pipeline.size)
        for label in ("cold", "warm"):
            r = run_trial(pipeline, arch).to_dict()
            if r["status"] != "ok":
                raise SystemExit(f"{arch} {label}: trial failed: {r['failure_reason']}")
            compute = r["time_student_s"] - r["time_data_s"]
            img_s = r["steps"] * pipeline.batch_size / compute
            gflops = img_s * 3 * gmacs * 2
            rows.append(
                {
                    "arch": arch,
                    "cache": label,
                    "steps": r["steps"],
                    "batch": pipeline.batch_size,
                    "res": "x".join(map(str, pipeline.size)),
                    "teacher_s": r["time_teacher_s"],
                    "student_s": r["time_student_s"],
                    "data_s": r["time_data_s"],
                    "eval_s": r["time_eval_s"],
                    "wall_s": r["wall_s"],
                    "img_s": r["images_per_s"],
                    "fwd_gmacs": gmacs,
                    "train_gflop_s": gflops,
                    "pct_matmul": 100 * gflops / yardstick,
                    "fidelity": r["fidelity"],
                    "fidelity_cos": r["fidelity_cos"],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="xt,t")
    parser.add_argument("--pipeline", default=str(ROOT / "pipelines/distill_cpu.yaml"))
    parser.add_argument("--steps", type=int, help="override the pipeline's steps")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    info = machine()
    # The yardstick: all cores (torch's default threads); the 1-thread figure is shown beside it
    # because the CPU pipeline trains with student.threads: 1 on these shared machines.
    yardstick = matmul_gflops()
    info["matmul_2048_fp32_gflop_s"] = f"{yardstick:.1f}"
    info["matmul_2048_fp32_gflop_s_1thread"] = f"{matmul_gflops(threads=1):.1f}"
    rows = [row for arch in args.archs.split(",") for row in bench(arch, args.pipeline, args.steps, yardstick)]
    info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    if args.json:
        json.dump({"machine": info, "rows": rows}, sys.stdout, indent=2)
        print()
        return 0
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    cols = [
        "arch",
        "cache",
        "steps",
        "batch",
        "res",
        "teacher_s",
        "student_s",
        "data_s",
        "eval_s",
        "wall_s",
        "img_s",
        "fwd_gmacs",
        "train_gflop_s",
        "pct_matmul",
        "fidelity",
        "fidelity_cos",
    ]
    table = [[f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(t, widths)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
