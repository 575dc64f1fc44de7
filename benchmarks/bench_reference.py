"""radio-nas E-RADIO against the published E-RADIO code, both deployed, side by side.

The published code is NOT part of this repository: download NVlabs/RADIO yourself and point
--ref at a folder holding its ``radio/eradio_model.py`` (or a copy of that file). That file imports
three names from timm; if timm is not installed, put a minimal stand-in package next to it. Never
install timm into radio-nas's environment (it pulls torchvision).

    python benchmarks/bench_reference.py --ref /path/to/folder-with-eradio_model.py \\
        [--configs xxxtiny,l-v2] [--resolutions 224,512] [--batches 1,8] [--threads 1,2] [--budget-s 420]

For each config both models get identical weights (random, BatchNorm statistics randomised; ours
loaded from the published names with radio_nas.models.published), windows from the resolution
(the reference's ``set_optimal_window_size``, our ``auto``), and both are deployed (the reference's
``switch_to_deploy``, our ``deploy_model``). Printed: parameters, GMACs (both with
torch.utils.flop_counter, ours also with fvcore), the features' max relative difference, and per
cell the median wall-clock latency of each and the median (p25-p75) of paired ratios
ours / reference, the two run back to back in alternating order. Repeats are sized from a
calibration forward so the timing fits --budget-s (a cell gets at least one pair; cells whose
forward takes over 5 s get no separate warm-up). OpenMP waits passively (OMP_WAIT_POLICY=PASSIVE,
set before torch loads) so two threads do not spin against other processes on a shared CPU.
Finally a per-op profile of both at the first resolution, batch 1, one thread: time share and
achieved GMAC/s of the top ops against this CPU's fp32 matmul peak (a 2048^3 matmul).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import functools
import importlib
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from radio_nas.measure import count_gmacs, count_params, cpu_model
from radio_nas.measure.profile import versions
from radio_nas.models import build_model, compile_deployed, deploy_model, resolve_config
from radio_nas.models.deploy import CompiledDeploy
from radio_nas.models.published import map_published_state_dict

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    # name -> (published factory, our equivalent config)
    "xxxtiny": (
        "eradio_xxxtiny",
        {
            "width": 32,
            "stem_width": 32,
            "depths": [1, 3, 4, 5],
            "head_dim": 16,
            "pre_conv": "dense",
            "mra_merge": "half",
            "fusion": "neck",
            "output_dim": 256,
            "pretrained_window": 16,
        },
    ),
    "l-v2": ("eradio_large_fullres_ws16", {"preset": "l-v2"}),
}


class _Features(nn.Module):
    """The reference's forward_features as forward (what CompiledDeploy compiles)."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model.forward_features(x)


def _randomise_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            cast(torch.Tensor, m.running_mean).copy_(torch.rand(n, generator=g) - 0.5)
            cast(torch.Tensor, m.running_var).copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


def _flop_counter_gmacs(fn: Callable[[], Any]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 2 / 1e9


def _once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _matmul_peak_gmacs(threads: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_once(lambda: a @ b) for _ in range(5))
    return 2048**3 / best / 1e9


def _op_profile(label: str, fn: Callable[[], Any], peak: float, top: int = 8) -> list[str]:
    with torch.inference_mode():
        fn()
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            for _ in range(3):
                fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    lines = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        macs = (e.flops or 0) / 2
        rate = macs / (e.self_cpu_time_total * 1e-6) / 1e9 if macs else 0.0
        eff = f"{rate:.1f} GMAC/s = {100 * rate / peak:.0f} % of peak" if macs else "-"
        lines.append(f"| {label} | {e.key} | {e.count} | {100 * e.self_cpu_time_total / total:.1f} % | {eff} |")
    lines.append(f"| {label} | (total self CPU, per forward) | | {total / 3e3:.1f} ms | |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="folder holding the published eradio_model.py (and timm)")
    p.add_argument("--configs", default="xxxtiny,l-v2")
    p.add_argument("--resolutions", default="224,512")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--threads", default="1,2")
    p.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="timing budget over all cells (s); with "
        "the ~5 min setup and profile, the default table takes about 13 min",
    )
    p.add_argument("--max-pairs", type=int, default=40)
    p.add_argument(
        "--compile",
        action="store_true",
        help="time ours compiled (radio_nas.models.compile_deployed: torch.compile, inductor, weights "
        "frozen) against the reference deployed in eager mode; one compile per config, input and "
        "batch (its wall time is printed and not part of --budget-s)",
    )
    p.add_argument(
        "--compile-reference",
        action="store_true",
        help="with --compile: compile the deployed reference the same way (context: how much of the "
        "gain is the compiler's); the ratio is then compiled / compiled",
    )
    args = p.parse_args()
    t_start = time.perf_counter()
    sys.path.insert(0, args.ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        published = importlib.import_module("eradio_model")
    resolutions = [int(r) for r in args.resolutions.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    # build and check every pair of models first; time afterwards
    prepared: list[tuple[str, int, Any, nn.Module, float]] = []  # the reference model is untyped
    summary_rows = []
    for name in args.configs.split(","):
        factory, spec = CONFIGS[name]
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base: Any = getattr(published, factory)(return_full_features=True).eval()
        base.norm, base.head = nn.Identity(), nn.Identity()  # as RADIO uses it
        _randomise_bn(base)
        ref_params = count_params(base)
        cfg = resolve_config(spec)
        state = map_published_state_dict(base.state_dict(), cfg)
        for res in resolutions:
            x = torch.randn(1, 3, res, res)
            ref: Any = copy.deepcopy(base)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                ref.set_optimal_window_size((res, res))
                ref_gmacs = _flop_counter_gmacs(functools.partial(ref.forward_features, x))
                ref.forward_features(x)  # fills the bias buffer that switch_to_deploy freezes
                ref.switch_to_deploy()
            ours: Any = build_model(cfg, resolution=(res, res))
            ours.load_state_dict(state)
            n_params, gmacs = count_params(ours), count_gmacs(ours, (res, res))  # before folding
            ours_fc = _flop_counter_gmacs(functools.partial(ours.eval(), x))
            ours = deploy_model(ours)
            with torch.inference_mode():
                theirs = ref.forward_features(x)[1]
                mine = ours(x)[1]
            err = ((mine - theirs).abs().max() / theirs.abs().max()).item()
            summary_rows.append(
                [
                    name,
                    f"{res}",
                    f"{n_params:,}",
                    f"{ref_params:,}",
                    f"{gmacs:.3f}",
                    f"{ours_fc:.3f}",
                    f"{ref_gmacs:.3f}",
                    f"{list(ours.window_sizes)}",
                    f"{err:.1e}",
                ]
            )
            prepared.append((name, res, ref, ours, ref_gmacs))
        del base
    setup_s = time.perf_counter() - t_start

    # calibration: one warm pair per config and thread count at its cheapest cell -> s per GMAC
    rate: dict[tuple[str, int], float] = {}
    for name, res, ref, ours, g in prepared:
        for t in threads:
            if (name, t) in rate:
                continue
            torch.set_num_threads(t)
            x = torch.randn(1, 3, res, res)
            with torch.inference_mode():
                ours(x)
                ref.forward_features(x)
                pair = _once(functools.partial(ours, x)) + _once(functools.partial(ref.forward_features, x))
            rate[(name, t)] = pair / g
    cells = [(name, res, ref, ours, g, b, t) for name, res, ref, ours, g in prepared for b in batches for t in threads]
    share = args.budget_s / len(cells)
    rows = []
    compile_rows = []
    ours_profile: dict[str, list[str]] = {}  # compiled models are profiled in their cell (one lives at a time)
    peak = _matmul_peak_gmacs(1)
    compile_s = 0.0
    for name, res, ref, eager, g, b, t in cells:
        ours, theirs_fn = eager, ref.forward_features
        torch.set_num_threads(t)
        if args.compile:  # inductor's C++ kernels specialise on the thread count: one compile per cell
            torch._dynamo.reset()
            t0 = time.perf_counter()
            ours = compile_deployed(eager, torch.randn(b, 3, res, res))
            if args.compile_reference:
                theirs_fn = CompiledDeploy(_Features(ref))
                with torch.inference_mode():
                    theirs_fn(torch.randn(b, 3, res, res))
            compile_s += time.perf_counter() - t0
            compile_rows.append(f"| {name} | {res} | {b} | {t} | {time.perf_counter() - t0:.0f} |")
            print("  compiled:", compile_rows[-1], flush=True)
            if res == resolutions[0] and b == 1 and t == 1:
                x1 = torch.randn(1, 3, res, res)
                ours_profile[name] = _op_profile(f"{name} {res} ours compiled", functools.partial(ours, x1), peak)
        est_pair = rate[(name, t)] * g * b
        pairs = int(max(1, min(args.max_pairs, share // est_pair)))
        x = torch.randn(b, 3, res, res)
        mine, theirs, ratios = [], [], []
        with torch.inference_mode():
            if est_pair < 10:  # warm-up (oneDNN primitives for this shape) unless it costs a pair
                ours(x)
                theirs_fn(x)
            for i in range(pairs):
                if i % 2:
                    a = _once(functools.partial(ours, x))
                    r = _once(functools.partial(theirs_fn, x))
                else:
                    r = _once(functools.partial(theirs_fn, x))
                    a = _once(functools.partial(ours, x))
                mine.append(a * 1e3)
                theirs.append(r * 1e3)
                ratios.append(a / r)
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        rows.append(
            [
                name,
                f"{res}",
                f"{b}",
                f"{t}",
                f"{pairs}",
                f"{statistics.median(mine):.1f}",
                f"{statistics.median(theirs):.1f}",
                f"**{statistics.median(ratios):.3f}**",
                f"{q[0]:.3f}-{q[2]:.3f}" if len(ratios) > 1 else "(one pair)",
            ]
        )
        print("  cell:", " | ".join(rows[-1]), flush=True)
    timing_s = time.perf_counter() - t_start - setup_s - compile_s

    torch.set_num_threads(1)
    profile_lines = []
    for name, res, ref, ours, _ in prepared:
        if res != resolutions[0]:
            continue
        x = torch.randn(1, 3, res, res)
        profile_lines += ours_profile.get(name) or _op_profile(f"{name} {res} ours", functools.partial(ours, x), peak)
        profile_lines += _op_profile(f"{name} {res} reference", functools.partial(ref.forward_features, x), peak)

    print(
        f"\nmachine: {cpu_model()} ({os.cpu_count()} CPUs visible), {platform.platform()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"wall: setup {setup_s:.0f} s, timing {timing_s:.0f} s (budget {args.budget_s:.0f} s)")
    if compile_rows:
        print("\nours compiled (torch.compile, inductor, weights frozen); compile wall time, not timed in the cells")
        print("| config | input | batch | threads | compile s |\n|---|---|---|---|---|")
        print("\n".join(compile_rows))
    print(
        "\n| config | input | params (ours) | params (reference) | GMACs ours (fvcore) | GMACs ours "
        "(flop_counter) | GMACs reference (flop_counter) | windows | max rel. diff of features |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in summary_rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n| config | input | batch | threads | pairs | ours {'compiled' if args.compile else 'deployed'} ms (median) "
        f"| reference {'compiled' if args.compile_reference else 'deployed'} ms "
        "(median) | ours / reference (median of pairs) | p25-p75 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nper-op profile, batch 1, 1 thread (fp32 matmul peak here: {peak:.1f} GMAC/s on one thread)")
    print("| model | op | calls | share of self CPU | achieved |")
    print("|---|---|---|---|---|")
    print("\n".join(profile_lines))


if __name__ == "__main__":
    main()
