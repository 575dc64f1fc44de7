"""`radio-nas profile`: params, GMACs, latency and peak memory of one variant."""

from __future__ import annotations

import argparse
from typing import Any

from radio_nas._config import ConfigError, parse_assignment
from radio_nas.cli._checks import int_at_least
from radio_nas.cli._options import add_set_option

# Refuse an input whose float32 tensor alone, times this allowance for activations, exceeds memory.
_ACTIVATION_ALLOWANCE = 8


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "profile",
        help="params, GMACs, latency and memory of one variant",
        description="Profile one student variant: parameter count, GMACs (fvcore, every op "
        "counted), latency (median and p90 after warm-up) and peak memory.",
    )
    p.add_argument("arch", help="preset name (xt, t, s, b, l, l-v2, ...) or an architecture YAML file")
    p.add_argument("--resolution", default="224", help="input size: N or HxW, multiples of 32 (default 224)")
    p.add_argument("--batch-size", type=int_at_least(1), default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 (autocast; default fp32)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--runs", type=int_at_least(1), default=50, help="timed runs after warm-up (default 50)")
    p.add_argument("--warmup", type=int_at_least(0), default=10)
    p.add_argument(
        "--no-deploy",
        dest="deploy",
        action="store_false",
        help="time the training graph in eval mode instead of the deployable one "
        "(BatchNorm folded, position bias cached; the default)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="time the deployed graph compiled by torch.compile (inductor, weights frozen as "
        "constants; needs a C++ compiler); the compile is one untimed first call, reported",
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="torch checkpoint to load first (weights-only): the model's own state dict or "
        "the published E-RADIO v2 one (e.g. eradio_v2.pth.tar with the l-v2 preset)",
    )
    add_set_option(p, "override an architecture field, e.g. --set width=96 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas.cli import print_json
    from radio_nas.measure import profile

    overrides = dict(parse_assignment(s) for s in args.set)
    _check_size(args.resolution, args.batch_size)
    _check_model_size(args.arch, overrides, args.resolution, args.batch_size)
    result = profile(
        args.arch,
        resolution=args.resolution,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        channels_last=args.channels_last,
        runs=args.runs,
        warmup=args.warmup,
        deploy=args.deploy,
        weights=args.weights,
        compile=args.compile,
        **overrides,
    )
    if args.json:
        print_json(result)
        return 0
    lat = result["latency"]
    h, w = result["resolution"]
    print(f"arch {args.arch} (id {result['arch_id']}) at {h}x{w}, batch {lat['batch_size']}")
    print(f"  params     {result['params'] / 1e6:.2f} M")
    if result["weights"]:
        print(f"  weights    {result['weights']}")
    print(f"  GMACs      {result['gmacs']:.3f} per image")
    if "windows" in result:
        pinned = result["arch"]["window_sizes"] != "auto"
        print(
            f"  windows    {', '.join(map(str, result['windows']))} "
            f"({'pinned' if pinned else 'auto: from the resolution'})"
        )
        print(f"  window fit {result['window_fit']} ({_FIT_WORDS[result['window_fit']]})")
        for line in result["window_padding"]:
            print(f"  padding    {line}")
        for line in result["window_resizing"]:
            print(f"  resizing   {line}")
    print(
        f"  latency    median {lat['median_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms "
        f"({lat['runs']} runs, {lat['dtype']}{', channels_last' if lat['channels_last'] else ''}, "
        f"{_graph_label(lat)})"
    )
    print(f"  throughput {lat['images_per_s']:.1f} img/s")
    if lat["peak_memory_mb"] is not None:
        print(f"  peak mem   {lat['peak_memory_mb']:.1f} MB")
    print(f"  device     {lat['device_name']}")
    return 0


_FIT_WORDS = {
    "pad_mask": "a map the windows do not tile is padded, padded keys masked",
    "resize": "a map the windows do not tile is resized, nearest, and back: the published weights' rule",
}


def _graph_label(lat: dict[str, Any]) -> str:
    """What was timed, in words."""
    if lat.get("compiled"):
        return f"deployed, compiled in {lat['compile_s']:.1f} s"
    return "deployed" if lat["deploy"] else "training graph"


def _check_model_size(arch: str, overrides: dict[str, Any], resolution: str, batch_size: int) -> None:
    """Refuse a variant whose parameters, position-bias tables and activations cannot fit this
    machine (width 10^9, windows 10^6), with the estimate, before anything is allocated."""
    from radio_nas.measure import parse_resolution
    from radio_nas.measure.size import check_fits
    from radio_nas.models import resolve_config

    cfg = resolve_config(arch, **overrides)
    what = f"arch {arch}" + (f" with --set {', '.join(f'{k}={v}' for k, v in overrides.items())}" if overrides else "")
    check_fits(cfg, parse_resolution(resolution), batch_size, what=what)


def _check_size(resolution: str, batch_size: int) -> None:
    """Refuse sizes this machine cannot hold (resolution 100000, batch 10^9) in one line."""
    import os

    from radio_nas.measure import parse_resolution

    h, w = parse_resolution(resolution)
    need = batch_size * 3 * h * w * 4 * _ACTIVATION_ALLOWANCE
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        key = "--batch-size" if batch_size > 1 else "--resolution"
        raise ConfigError(
            f"--batch-size {batch_size} at --resolution {h}x{w} needs about {need / 2**30:,.0f} GiB "
            f"(input and activations); this machine has {have / 2**30:,.0f} GiB",
            key=key,
        )
