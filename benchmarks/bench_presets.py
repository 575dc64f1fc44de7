"""Preset table: params, GMACs and latency of every E-RADIO preset (benchmarks/presets_cpu.md).

    python benchmarks/bench_presets.py [--resolution 224] [--device cpu|cuda] [--dtype fp32|bf16]
        [--channels-last] [--batch-sizes 1,16] [--runs 30] [--presets xt,t,s,b,l] [--deploy both|on|off]
        [--compile]

Latency is the median (and p90) over --runs timed forwards after warm-up, per batch size, of the
deployed graph (BatchNorm folded, position bias cached: what ``radio-nas profile`` and the sweep's
latency objective time) and/or the training graph in eval mode; with ``--deploy both`` a last
column gives the median of paired ratios deployed / training graph (runs interleaved). The table
names the machine and library versions it was measured with. ``--compile`` adds, per batch size,
the wall time of compiling the deployed graph (``radio_nas.models.compile_deployed``: torch.compile,
inductor, weights frozen) and the median of paired ratios compiled / deployed (CPU, fp32).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from radio_nas.measure import (
    count_gmacs,
    count_params,
    measure_latency,
    parse_resolution,
)
from radio_nas.measure.profile import versions
from radio_nas.models import build_model, compile_deployed, deploy_model


def paired_ratio(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, pairs: int) -> float:
    """Median over back-to-back pairs (order alternating) of time(a) / time(b)."""
    ratios = []
    with torch.inference_mode():
        a(x)
        b(x)
        for i in range(pairs):
            first, second = (a, b) if i % 2 else (b, a)
            t0 = time.perf_counter()
            first(x)
            t1 = time.perf_counter()
            second(x)
            t2 = time.perf_counter()
            ta, tb = (t1 - t0, t2 - t1) if i % 2 else (t2 - t1, t1 - t0)
            ratios.append(ta / tb)
    return statistics.median(ratios)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", default="224")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--batch-sizes", default="1,16")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--presets", default="xt,t,s,b,l")
    p.add_argument(
        "--deploy",
        choices=("both", "on", "off"),
        default="both",
        help="time the deployed graph, the training graph (eval), or both (default)",
    )
    p.add_argument("--compile", action="store_true", help="also compile the deployed graph and compare")
    args = p.parse_args()
    h, w = parse_resolution(args.resolution)
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.deploy]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    device_name = ""
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = build_model(preset, resolution=(h, w))
        row = [preset, f"{count_params(model) / 1e6:.1f}", f"{count_gmacs(model, (h, w)):.2f}"]
        for batch in batches:
            for deploy in modes:
                r = measure_latency(
                    model,
                    (h, w),
                    batch,
                    args.device,
                    args.dtype,
                    args.channels_last,
                    warmup=args.warmup,
                    runs=args.runs,
                    deploy=deploy,
                )
                device_name = r.device_name
                row += [f"{r.median_ms:.1f} / {r.p90_ms:.1f}", f"{r.images_per_s:.1f}"]
            if len(modes) == 2 and args.device == "cpu" and args.dtype == "fp32" and not args.channels_last:
                x = torch.randn(batch, 3, h, w)
                row.append(f"{paired_ratio(deploy_model(model), model.eval(), x, args.runs):.3f}")
            if args.compile and args.device == "cpu" and args.dtype == "fp32":
                x = torch.randn(batch, 3, h, w)
                torch._dynamo.reset()
                t0 = time.perf_counter()
                compiled = compile_deployed(model, x)
                row.append(f"{time.perf_counter() - t0:.0f}")
                row.append(f"{paired_ratio(compiled, deploy_model(model), x, args.runs):.3f}")
                del compiled
        rows.append(row)
        del model
    header = ["preset", "params (M)", f"GMACs @{h}x{w}"]
    for batch in batches:
        for deploy in modes:
            graph = "deployed" if deploy else "training graph"
            header += [f"b{batch} {graph} median / p90 (ms)", f"b{batch} {graph} img/s"]
        if len(modes) == 2 and args.device == "cpu" and args.dtype == "fp32" and not args.channels_last:
            header.append(f"b{batch} deployed / training (paired median)")
        if args.compile and args.device == "cpu" and args.dtype == "fp32":
            header += [f"b{batch} compile (s)", f"b{batch} compiled / deployed (paired median)"]
    layout = f"{args.dtype}{', channels_last' if args.channels_last else ''}"
    print(f"device: {device_name}; {layout}; {args.runs} runs after {args.warmup} warm-up")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
