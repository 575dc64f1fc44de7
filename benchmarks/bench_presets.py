"""Preset table: params, GMACs and latency of every E-RADIO preset (README table).

    python benchmarks/bench_presets.py [--resolution 224] [--device cpu|cuda] [--dtype fp32|bf16]
        [--channels-last] [--batch-sizes 1,16] [--runs 30] [--presets xt,t,s,b,l]

Latency is the median (and p90) over --runs timed forwards after warm-up, per batch size;
the table names the machine and library versions it was measured with.
"""
from __future__ import annotations

import argparse

import torch

from radio_nas.measure import count_gmacs, count_params, measure_latency, parse_resolution
from radio_nas.measure.profile import versions
from radio_nas.models import build_model


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
    args = p.parse_args()
    h, w = parse_resolution(args.resolution)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    device_name = ""
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = build_model(preset)
        row = [preset, f"{count_params(model) / 1e6:.1f}", f"{count_gmacs(model, (h, w)):.2f}"]
        for batch in batches:
            r = measure_latency(model, (h, w), batch, args.device, args.dtype, args.channels_last,
                                warmup=args.warmup, runs=args.runs)
            device_name = r.device_name
            row += [f"{r.median_ms:.1f} / {r.p90_ms:.1f}", f"{r.images_per_s:.1f}"]
        rows.append(row)
        del model
    header = ["preset", "params (M)", f"GMACs @{h}x{w}"]
    for batch in batches:
        header += [f"b{batch} median / p90 (ms)", f"b{batch} img/s"]
    layout = f"{args.dtype}{', channels_last' if args.channels_last else ''}"
    print(f"device: {device_name}; {layout}; {args.runs} runs after {args.warmup} warm-up")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
