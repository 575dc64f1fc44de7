"""radio-nas E-RADIO against the published E-RADIO code, both deployed, side by side.

The published code is NOT part of this repository: download NVlabs/RADIO yourself and point
--ref at a folder holding its ``radio/eradio_model.py`` (or a copy of that file). That file imports
three names from timm; if timm is not installed, put a minimal stand-in package next to it. Never
install timm into radio-nas's environment (it pulls torchvision).

    python benchmarks/bench_reference.py --ref /path/to/folder-with-eradio_model.py \\
        [--configs xxxtiny,l-v2] [--resolutions 224,512] [--batches 1,8] [--threads 1,2] [--budget-s 420] \\
        [--compile] [--profile-cells l-v2:224:8:2] [--min-pairs 15]

For each config both models get identical weights (random, BatchNorm statistics randomised; ours
loaded from the published names with radio_nas.models.published), windows from the resolution
(the reference's ``set_optimal_window_size``, our ``auto``), and both are deployed (the reference's
``switch_to_deploy``, our ``deploy_model``). Printed: parameters, GMACs (both with
torch.utils.flop_counter, ours also with fvcore), the features' max relative difference, and per
cell the median wall-clock latency of each and the median (p25-p75) of paired ratios
ours / reference, the two run back to back in alternating order. Repeats are sized from a
calibration forward so the timing fits --budget-s (a cell gets at least --min-pairs pairs, default
one; a cell whose forward takes over 5 s gets no separate warm-up unless it runs 10 pairs or more).
OpenMP waits passively (OMP_WAIT_POLICY=PASSIVE, set before torch loads) so two threads do not spin
against other processes on a shared CPU.
Finally per-op profiles of both (--profile-cells CONFIG:RES:BATCH:THREADS; default each config at the
first resolution, batch 1, one thread): the top ops' share of self CPU time and calls, and for the
GEMM, conv and attention kernels the achieved GMAC/s (MACs counted from each call's recorded shapes)
against this CPU's fp32 matmul peak on the same thread count (the faster of a 2048^3 MKL matmul
and the same product as a oneDNN inner product, best of ten each).
The load average is printed at the start, the end and around each cell.
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


def _matmul_peak_gmacs(threads: int) -> tuple[float, float]:
    """GMAC/s (wall time) of a 2048^3 fp32 matrix product on `threads` threads, best of ten each, by
    the two libraries the models' kernels come from: MKL (``a @ b``, what eager ``mm`` and inductor's
    ``mkl::_mkl_linear`` use) and oneDNN (its inner product, what its convolutions are built like);
    on this project's AMD CPU oneDNN's is the faster."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a_dnn, b_dnn = a.to_mkldnn(), b.to_mkldnn()
    rates = []
    with torch.inference_mode():
        for fn in (lambda: a @ b, lambda: torch._C._nn.mkldnn_linear(a_dnn, b_dnn, None)):
            fn()
            rates.append(2048**3 / min(_once(fn) for _ in range(10)) / 1e9)
    return rates[0], rates[1]


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _conv_out(x: list[int], w: list[int], padding: Any, stride: Any, dilation: Any) -> list[int] | None:
    """NCHW output shape of a conv of `x` with weight `w`, or None if the arguments are not as expected."""
    if len(x) != 4 or len(w) != 4 or not all(isinstance(v, list) and len(v) == 2 for v in (padding, stride, dilation)):
        return None
    hw = [(x[i + 2] + 2 * padding[i] - dilation[i] * (w[i + 2] - 1) - 1) // stride[i] + 1 for i in range(2)]
    return [x[0], w[0], *hw]


def _conv_pointwise_macs(shapes: list[list[int]], concrete: list[Any]) -> int | None:
    # mkldnn::_convolution_pointwise(_) (inductor's prepacked conv): unary (x, w, b, padding, stride,
    # dilation, groups, ...) or binary (x, other, w, ...) / in-place binary (other, x, w, ...), where
    # `other` has the output's shape; the weight keeps its logical [out, in/groups, kh, kw] shape
    pad_i = next((i for i, v in enumerate(concrete) if isinstance(v, list)), None)
    if pad_i not in (3, 4) or len(concrete) < pad_i + 3:
        return None
    w = shapes[pad_i - 2]
    pad, stride, dil = concrete[pad_i : pad_i + 3]
    if pad_i == 3:
        out = _conv_out(shapes[0], w, pad, stride, dil)
    else:  # binary: the input is whichever of the first two maps onto the other's shape
        out = next((shapes[1 - i] for i in (0, 1) if _conv_out(shapes[i], w, pad, stride, dil) == shapes[1 - i]), None)
    return None if out is None else out[0] * out[2] * out[3] * _numel(w)


def _macs(name: str, shapes: list[list[int]], concrete: list[Any]) -> int | None:
    """Multiply-accumulates of one call of a GEMM/conv kernel from its recorded input shapes (and
    scalar/list arguments); None where they do not determine it."""
    try:
        if name == "aten::mm":
            return shapes[0][0] * shapes[0][1] * shapes[1][1]
        if name in ("aten::addmm", "aten::baddbmm"):
            return _numel(shapes[1]) * shapes[2][-1]
        if name == "aten::bmm":
            return _numel(shapes[0]) * shapes[1][-1]
        if name == "mkl::_mkl_linear":  # (x, packed weight, original weight [out, in], bias, batch)
            return _numel(shapes[0]) * shapes[2][0]
        if name == "aten::mkldnn_convolution":  # (x, w, b, padding, stride, dilation, groups)
            out = _conv_out(shapes[0], shapes[1], *concrete[3:6])
            return None if out is None else out[0] * out[2] * out[3] * _numel(shapes[1])
        if name == "aten::_slow_conv2d_forward":  # (x, w, kernel_size, b, stride, padding); no dilation
            out = _conv_out(shapes[0], shapes[1], concrete[5], concrete[4], [1, 1])
            return None if out is None else out[0] * out[2] * out[3] * _numel(shapes[1])
        if name in ("mkldnn::_convolution_pointwise", "mkldnn::_convolution_pointwise_"):
            return _conv_pointwise_macs(shapes, concrete)
        if name in ("aten::slow_conv_transpose2d", "mkldnn::_convolution_transpose_pointwise"):
            # transposed: every input pixel meets the whole [in, out/groups, kh, kw] weight once
            x, w = shapes[0], shapes[1]
            return x[0] * x[2] * x[3] * _numel(w) if len(x) == 4 and len(w) == 4 else None
        if name == "aten::_scaled_dot_product_flash_attention_for_cpu":  # q k^T and attn v (softmax not counted)
            q, k, v = shapes[:3]
            return _numel(q[:-1]) * k[-2] * (q[-1] + v[-1])
    except (IndexError, TypeError):
        return None
    return None


_GEMM_LIKE = (
    "aten::mm",
    "aten::addmm",
    "aten::baddbmm",
    "aten::bmm",
    "mkl::_mkl_linear",
    "mkldnn::_linear_pointwise",
    "aten::mkldnn_convolution",
    "aten::_slow_conv2d_forward",
    "aten::slow_conv_transpose2d",
    "mkldnn::_convolution_pointwise",
    "mkldnn::_convolution_pointwise_",
    "mkldnn::_convolution_transpose_pointwise",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
)


_TRANSPOSED_INSIDE = "aten::_convolution (transposed, oneDNN inside it)"


def _descendants(ev: Any) -> list[Any]:
    out = []
    for c in ev.cpu_children:
        out += [c, *_descendants(c)]
    return out


def _op_profile(label: str, fn: Callable[[], Any], peak: float, forwards: int = 3, top: int = 8) -> list[str]:
    """Top ops by self CPU time over `forwards` profiled forwards (after one warm-up). For the GEMM,
    conv and attention kernels, the achieved rate: MACs counted from each call's recorded shapes over
    the op's self time. The profiler's self time is wall time on the calling thread (an op's OpenMP
    workers are inside it), so the rate compares with `peak`, a wall-clock matmul on as many threads.
    Eager oneDNN transposed convolutions have no op of their own (a dispatch stub inside
    ``aten::_convolution``): those calls are listed apart, their time being that op's self time."""
    with torch.inference_mode():
        fn()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(forwards):
                fn()
    stats: dict[str, list[Any]] = {}  # key -> [calls, self us, MACs or None if any call's are unknown]
    for ev in prof.events():
        key, concrete = ev.name, list(getattr(ev, "concrete_inputs", None) or [])
        n: int | None = None
        if key in _GEMM_LIKE:
            n = _macs(key, ev.input_shapes, concrete)
        elif (
            key == "aten::_convolution"  # (x, w, b, stride, padding, dilation, transposed, ...)
            and len(concrete) > 6
            and concrete[6] is True
            and not any(d.name in _GEMM_LIKE for d in _descendants(ev))
        ):
            key = _TRANSPOSED_INSIDE
            n = _macs("aten::slow_conv_transpose2d", ev.input_shapes, concrete)
        st = stats.setdefault(key, [0, 0.0, 0])
        st[0] += 1
        st[1] += ev.self_cpu_time_total
        st[2] = None if n is None or st[2] is None else st[2] + n
    gemm_like = (*_GEMM_LIKE, _TRANSPOSED_INSIDE)
    total = sum(st[1] for st in stats.values())
    lines = []
    for key, (calls, us, m) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:top]:
        if key not in gemm_like:
            eff = "-"
        elif m is None:
            eff = "n/a (MACs not determined by the recorded shapes)"
        else:
            rate = m / (us * 1e-6) / 1e9
            eff = f"{rate:.1f} GMAC/s = {100 * rate / peak:.0f} % of peak"
        lines.append(f"| {label} | {key} | {calls} | {100 * us / total:.1f} % | {eff} |")
    gemm = {k: st for k, st in stats.items() if k in gemm_like}
    g_time = sum(st[1] for st in gemm.values())
    c_time = sum(st[1] for st in gemm.values() if st[2] is not None)
    c_macs = sum(st[2] for st in gemm.values() if st[2] is not None)
    if c_time:
        rate = c_macs / (c_time * 1e-6) / 1e9
        eff = f"{rate:.1f} GMAC/s = {100 * rate / peak:.0f} % of peak ({c_macs / forwards / 1e9:.2f} GMACs a forward)"
        if c_time < g_time:
            eff += f"; {100 * (g_time - c_time) / total:.1f} % of the time in ones not counted"
    else:
        eff = "n/a"
    lines.append(f"| {label} | (all GEMM/conv/attention kernels) | | {100 * g_time / total:.1f} % | {eff} |")
    lines.append(f"| {label} | (total self CPU, per forward) | | {total / forwards / 1e3:.1f} ms | |")
    return lines


def _parse_profile_cells(text: str, configs: list[str], resolutions: list[int]) -> list[tuple[str, int, int, int]]:
    cells = []
    for item in text.split(","):
        parts = item.split(":")
        try:
            name, res, b, t = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
        except (IndexError, ValueError):
            raise ValueError(f"--profile-cells: {item!r} is not CONFIG:RESOLUTION:BATCH:THREADS") from None
        if len(parts) != 4 or name not in configs or res not in resolutions or b < 1 or t < 1:
            raise ValueError(
                f"--profile-cells: {item!r} needs a config of --configs ({','.join(configs)}), a resolution of "
                f"--resolutions ({','.join(map(str, resolutions))}) and a batch and thread count >= 1"
            )
        cells.append((name, res, b, t))
    return cells


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
        "--min-pairs",
        type=int,
        default=1,
        help="at least this many pairs per cell, whatever the budget (a cell of 10 or more pairs gets a warm-up pair)",
    )
    p.add_argument(
        "--profile-cells",
        default=None,
        help="per-op profiles to take, as CONFIG:RESOLUTION:BATCH:THREADS[,...] (a config and resolution "
        "among the ones built; batch and threads need not be timed cells); default: every config at the "
        "first resolution, batch 1, 1 thread",
    )
    p.add_argument("--profile-forwards", type=int, default=3, help="forwards under the profiler, per model")
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
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {','.join(unknown)} (expected some of {','.join(CONFIGS)})")
    try:
        resolutions = [int(r) for r in args.resolutions.split(",")]
        batches = [int(b) for b in args.batches.split(",")]
        threads = [int(t) for t in args.threads.split(",")]
        profile_cells = (
            _parse_profile_cells(args.profile_cells, configs, resolutions)
            if args.profile_cells
            else [(c, resolutions[0], 1, 1) for c in configs]
        )
    except ValueError as e:
        p.error(str(e))
    load_start = os.getloadavg()
    print(
        f"load average at start (1/5/15 min): {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True
    )
    t_start = time.perf_counter()
    sys.path.insert(0, args.ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        published = importlib.import_module("eradio_model")

    # build and check every pair of models first; time afterwards
    prepared: list[tuple[str, int, Any, nn.Module, float]] = []  # the reference model is untyped
    summary_rows = []
    for name in configs:
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
    compile_rows: list[str] = []
    load_rows: list[str] = []
    # profiles: cell -> (matmul peak on its thread count, table lines); a compiled model lives only
    # in its cell, so a profile cell that is also timed is profiled there, the others afterwards
    profiles: dict[tuple[str, int, int, int], tuple[float, float, list[str]]] = {}
    compile_s = 0.0

    def models_for(name: str, res: int, ref: Any, eager: nn.Module, b: int, t: int) -> tuple[Any, Any]:
        nonlocal compile_s
        torch.set_num_threads(t)
        if not args.compile:
            return eager, ref.forward_features
        # inductor's C++ kernels specialise on the thread count: one compile per cell
        torch._dynamo.reset()
        t0 = time.perf_counter()
        ours: Any = compile_deployed(eager, torch.randn(b, 3, res, res))
        theirs_fn: Any = ref.forward_features
        if args.compile_reference:
            theirs_fn = CompiledDeploy(_Features(ref))
            with torch.inference_mode():
                theirs_fn(torch.randn(b, 3, res, res))
        compile_s += time.perf_counter() - t0
        compile_rows.append(f"| {name} | {res} | {b} | {t} | {time.perf_counter() - t0:.0f} |")
        print("  compiled:", compile_rows[-1], flush=True)
        return ours, theirs_fn

    def profile_cell(name: str, res: int, b: int, t: int, ours: Any, theirs_fn: Any) -> None:
        mkl, onednn = _matmul_peak_gmacs(t)
        peak = max(mkl, onednn)
        x = torch.randn(b, 3, res, res)
        tag = f"{name} {res} b{b} {t}t"
        lines = _op_profile(
            f"{tag} ours{' compiled' if args.compile else ''}",
            functools.partial(ours, x),
            peak,
            args.profile_forwards,
        )
        lines += _op_profile(
            f"{tag} reference{' compiled' if args.compile_reference else ''}",
            functools.partial(theirs_fn, x),
            peak,
            args.profile_forwards,
        )
        profiles[(name, res, b, t)] = (mkl, onednn, lines)
        print(f"  profiled: {tag} (2048^3 product: MKL {mkl:.1f}, oneDNN {onednn:.1f} GMAC/s)", flush=True)

    for name, res, ref, eager, g, b, t in cells:
        ours, theirs_fn = models_for(name, res, ref, eager, b, t)
        if (name, res, b, t) in profile_cells:
            profile_s = time.perf_counter()
            profile_cell(name, res, b, t, ours, theirs_fn)
            compile_s += time.perf_counter() - profile_s  # not part of the timing
        est_pair = rate[(name, t)] * g * b
        pairs = int(max(args.min_pairs, 1, min(args.max_pairs, share // est_pair)))
        x = torch.randn(b, 3, res, res)
        mine, theirs, ratios = [], [], []
        load_before = os.getloadavg()[0]
        with torch.inference_mode():
            # warm-up (oneDNN primitives for this shape) unless it costs a large share of the cell
            if est_pair < 10 or pairs >= 10:
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
        load_rows.append(f"{name} {res} b{b} {t}t: {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
        print("  cell:", " | ".join(rows[-1]), f"(1-min load {load_rows[-1].split(': ')[1]})", flush=True)
    timing_s = time.perf_counter() - t_start - setup_s - compile_s

    for cell in profile_cells:
        if cell in profiles:
            continue
        name, res, b, t = cell
        ref, eager = next((r, o) for n, rs, r, o, _ in prepared if (n, rs) == (name, res))
        ours, theirs_fn = models_for(name, res, ref, eager, b, t)
        profile_cell(name, res, b, t, ours, theirs_fn)

    print(
        f"\nmachine: {cpu_model()} ({os.cpu_count()} CPUs visible), {platform.platform()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"wall: setup {setup_s:.0f} s, timing {timing_s:.0f} s (budget {args.budget_s:.0f} s)")
    load_end = os.getloadavg()
    print(
        f"load average (1/5/15 min): at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; 1-min load before -> after each cell: "
        + "; ".join(load_rows)
    )
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
    for (name, res, b, t), (mkl, onednn, lines) in profiles.items():
        print(
            f"\nper-op profile, {name} {res} batch {b}, {t} thread(s), {args.profile_forwards} forwards each; "
            f"peak = the faster 2048^3 fp32 product on {t} thread(s), best of ten: MKL matmul {mkl:.1f}, "
            f"oneDNN inner product {onednn:.1f} GMAC/s"
        )
        print("| model | op | calls | share of self CPU | achieved |")
        print("|---|---|---|---|---|")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
