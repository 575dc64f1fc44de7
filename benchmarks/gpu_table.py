"""GPU latency table: E-RADIO presets x resolutions x batch sizes x dtypes x memory layouts.

    python benchmarks/gpu_table.py                                  # on a GPU box (80 cells)
    python benchmarks/gpu_table.py --presets xt,t --resolutions 224 --batch-sizes 1 --out /tmp/gpu
    python benchmarks/gpu_table.py --device cpu --presets xt --resolutions 64 --batch-sizes 1 --runs 3

Each cell times the deployed model (BatchNorm folded, position bias cached: what ``radio-nas profile``
and a sweep's latency objective time) with ``radio_nas.measure.measure_latency``: CUDA events on a GPU,
windows ``auto`` (the window picked from the resolution). The timed runs of a cell are repeated
``--repeats`` times; the table gives the median of the repeats' medians, the median p90, images/s,
the allocator's peak memory and the coefficient of variation of the repeats' medians (how far one
figure can be trusted). It prints a Markdown table headed by the device name and library versions,
and with ``--out`` also writes ``gpu_table.md`` and ``gpu_table.json`` there. A cell that fails (out of
memory, say) is a row saying so, the rest goes on, and the exit status is 1. Not yet run on a GPU: the
time the default grid takes is not known; its 512 px, batch-64, fp32 cells of ``l`` and ``l-v2``
(over 100 GMACs per image) dominate it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch

from radio_nas.measure import count_gmacs, count_params, measure_latency
from radio_nas.measure.profile import versions
from radio_nas.models import build_model


def _fail(message: str) -> int:
    print(f"gpu_table.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, to try the script without a GPU")
    p.add_argument("--presets", default="xt,t,b,l,l-v2")
    p.add_argument("--resolutions", default="224,512")
    p.add_argument("--batch-sizes", default="1,64")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--layouts", default="nchw,channels_last", help="nchw, channels_last or both")
    p.add_argument("--runs", type=int, default=20, help="timed runs per repeat")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="folder for gpu_table.md and gpu_table.json")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        return _fail("--device cuda: no CUDA device is available (use --device cpu to try the script)")
    layouts = args.layouts.split(",")
    if not set(layouts) <= {"nchw", "channels_last"}:
        return _fail(f"--layouts: expected nchw and/or channels_last, got {args.layouts!r}")
    try:
        resolutions = [int(v) for v in args.resolutions.split(",")]
        batches = [int(v) for v in args.batch_sizes.split(",")]
    except ValueError:
        return _fail("--resolutions, --batch-sizes: expected comma-separated integers")
    rows: list[dict[str, object]] = []
    device_name = ""
    for preset, res in itertools.product(args.presets.split(","), resolutions):
        torch.manual_seed(0)
        model = build_model(preset, resolution=(res, res))
        params, gmacs = count_params(model) / 1e6, count_gmacs(model, (res, res))
        for batch, dtype, layout in itertools.product(batches, args.dtypes.split(","), layouts):
            cell = {"preset": preset, "resolution": res, "batch": batch, "dtype": dtype, "layout": layout}
            try:
                results = [
                    measure_latency(
                        model, (res, res), batch, args.device, dtype, layout == "channels_last", args.warmup, args.runs
                    )
                    for _ in range(args.repeats)
                ]
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory at 512 px, batch 64: the rest goes on
                rows.append({**cell, "error": str(exc).splitlines()[0]})
                if args.device == "cuda":
                    torch.cuda.empty_cache()
                continue
            medians = [r.median_ms for r in results]
            device_name = results[0].device_name
            rows.append(
                {
                    **cell,
                    "params_m": params,
                    "gmacs": gmacs,
                    "median_ms": statistics.median(medians),
                    "p90_ms": statistics.median(r.p90_ms for r in results),
                    "images_per_s": batch / statistics.median(medians) * 1e3,
                    "peak_memory_mb": max(r.peak_memory_mb or 0.0 for r in results),
                    "cv_pct": 100 * statistics.pstdev(medians) / statistics.fmean(medians),
                }
            )
        del model
    text = _table(rows, device_name, args)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_table.md").write_text(text + "\n")
        meta = {"device_name": device_name, "versions": versions(), "runs": args.runs, "repeats": args.repeats}
        (args.out / "gpu_table.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    return 1 if any("error" in r for r in rows) else 0


def _table(rows: list[dict[str, object]], device_name: str, args: argparse.Namespace) -> str:
    lines = [
        f"device: {device_name}; deployed graph; {args.repeats} repeats of {args.runs} runs"
        f" after {args.warmup} warm-up",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "",
        "| preset | input | batch | dtype | layout | params M | GMACs | median ms | p90 ms | img/s | peak MB | CV % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['preset']} | {r['resolution']} | {r['batch']} | {r['dtype']} | {r['layout']} |"
        if "error" in r:
            lines.append(f"{head} failed: {r['error']} |||||||")
            continue
        lines.append(
            f"{head} {r['params_m']:.1f} | {r['gmacs']:.2f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['images_per_s']:.1f} | {r['peak_memory_mb']:.0f} | {r['cv_pct']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
