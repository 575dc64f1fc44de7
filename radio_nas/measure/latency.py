"""Inference latency, timm-benchmark style: warm-up, then median and p90 over many timed runs.

GPU runs are timed with CUDA events (each run bracketed, one synchronize at the end); CPU runs
with ``time.perf_counter``. Every figure carries the device name, dtype and layout it was taken
with. Results are cached on disk by architecture id and measurement settings, since a sweep
meets the same variant many times.

    r = measure_latency(build_model("t"), (224, 224), batch_size=1)
    r.median_ms, r.p90_ms, r.device_name
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import statistics
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from radio_nas._config import ConfigError, stable_id
from radio_nas._util import atomic_write

if TYPE_CHECKING:
    from radio_nas.models import ArchConfig

Quiet = Callable[[], AbstractContextManager[bool]]
"""Entered around the warm-up and timed runs only; yields whether the machine was otherwise idle
(a sweep pauses its training trials there: :mod:`radio_nas.search.gate`)."""

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class LatencyResult:
    median_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    batch_size: int
    resolution: tuple[int, int]
    device: str
    device_name: str
    dtype: str
    channels_last: bool
    images_per_s: float
    deploy: bool
    """Timed the deployable graph (BatchNorm folded, position bias cached), not the training one."""
    peak_memory_mb: float | None
    """Peak memory of one forward: CUDA allocator peak on GPU; on CPU weights + peak live tensors
    (None for a compiled graph on CPU: the tensor tracker cannot see inside it)."""
    compiled: bool = False
    """Timed the deployed graph compiled by torch.compile, weights frozen (``compile=True``)."""
    compile_s: float | None = None
    """Wall time of that compile (the first, untimed call)."""
    quiet: bool = True
    """False: timed while other work may have run (a `quiet` block said so); never cached."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: str = "cpu") -> str:
    """What a latency figure was measured on; for a CPU it includes torch's thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def check_settings(device: str, dtype: str) -> None:
    if device not in DEVICES:
        raise ConfigError(f"expected one of {', '.join(DEVICES)}, got {device!r}", key="--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no GPU is available here", key="--device")
    if dtype not in DTYPES:
        raise ConfigError(f"expected one of {', '.join(DTYPES)}, got {dtype!r}", key="--dtype")


def measure_latency(
    model: nn.Module,
    resolution: tuple[int, int],
    batch_size: int = 1,
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    warmup: int = 10,
    runs: int = 50,
    deploy: bool = True,
    compile: bool = False,
    quiet: Quiet | None = None,
) -> LatencyResult:
    """Median/p90 forward latency in ms of `model` (eval mode, no grad, autocast for bf16/fp16).

    `deploy`: time a deployable copy (:func:`radio_nas.models.deploy_model`: BatchNorm folded,
    position bias cached), as the model would be served; False times the training graph in eval.
    `compile`: time that copy compiled by torch.compile with its weights frozen
    (:class:`radio_nas.models.deploy.CompiledDeploy`); the compile is an extra untimed first call.
    `quiet`: see :data:`Quiet` (building and compiling the model and the memory probe stay outside
    it)."""
    check_settings(device, dtype)
    if compile and not deploy:
        raise ConfigError("compiling times the deployed graph; it cannot be combined with no-deploy", key="--compile")
    if batch_size < 1 or runs < 1 or warmup < 0:
        raise ConfigError("batch size and runs must be >= 1, warm-up >= 0", key="--batch-size")
    h, w = resolution
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        cfg.check_input_size(h, w)
    set_input_size = getattr(model, "set_input_size", None)
    if callable(set_input_size):
        set_input_size(h, w)
    if deploy:
        from radio_nas.models.deploy import deploy_model

        model = deploy_model(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = cast(Any, model).to(device=device, memory_format=memory_format).eval()  # stubs lack memory_format
    x = torch.randn(batch_size, 3, h, w, device=device).contiguous(memory_format=memory_format)
    autocast = torch.autocast(device_type=device, dtype=DTYPES[dtype], enabled=dtype != "fp32")
    compile_s = None
    if compile:
        from radio_nas.models.deploy import CompiledDeploy

        model = CompiledDeploy(model)

    with torch.inference_mode(), autocast:
        if compile:
            t0 = time.perf_counter()
            model(x)  # compiles
            compile_s = time.perf_counter() - t0
        times, peak, was_quiet = _timed(model, x, device, warmup, runs, quiet, probe=not compile)
    median = statistics.median(times)
    return LatencyResult(
        median_ms=median,
        p90_ms=float(np.quantile(times, 0.9)),
        mean_ms=statistics.fmean(times),
        runs=runs,
        batch_size=batch_size,
        resolution=(h, w),
        device=device,
        device_name=device_name(device),
        dtype=dtype,
        channels_last=channels_last,
        images_per_s=batch_size / median * 1e3,
        deploy=deploy,
        peak_memory_mb=peak,
        compiled=compile,
        compile_s=compile_s,
        quiet=was_quiet,
    )


def _timed(
    model: Any, x: torch.Tensor, device: str, warmup: int, runs: int, quiet: Quiet | None, probe: bool = True
) -> tuple[list[float], float | None, bool]:
    """Per-run ms, peak memory MB (CPU: only with `probe`) and whether it was quiet (called inside
    inference mode and autocast)."""
    peak: float | None = None
    cuda = device.startswith("cuda")
    with quiet() if quiet is not None else contextlib.nullcontext(True) as was_quiet:
        for _ in range(warmup):
            model(x)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
            for start, end in events:
                start.record()
                model(x)
                end.record()
            torch.cuda.synchronize(device)
            times = [start.elapsed_time(end) for start, end in events]
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1e3)
    if not cuda and probe:
        weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        with _LiveTensorPeak() as tracker:
            model(x)
        peak = (weights + tracker.peak) / 2**20
    return times, peak, bool(was_quiet)


class LatencyOptions(Protocol):
    """What a latency is measured with: :class:`radio_nas.search.space.LatencySettings` (a space's
    ``latency`` section) is one; any object with these attributes is."""

    @property
    def batch_size(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def channels_last(self) -> bool: ...
    @property
    def runs(self) -> int: ...
    @property
    def warmup(self) -> int: ...
    @property
    def deploy(self) -> bool: ...


def cached_latency(
    cfg: ArchConfig,
    cache_dir: str | Path,
    resolution: tuple[int, int],
    settings: LatencyOptions,
    quiet: Quiet | None = None,
) -> LatencyResult:
    """:func:`measure_latency` with `settings` of the model `cfg` builds, cached by arch id +
    settings + device name (a measurement that was not quiet is returned, not cached)."""
    from radio_nas.models import build_model

    s = settings
    check_settings(s.device, s.dtype)
    path = latency_cache_path(cfg, cache_dir, resolution, s)
    if path.is_file():
        with contextlib.suppress(ValueError, TypeError, KeyError):
            data = json.loads(path.read_text())
            data["resolution"] = tuple(data["resolution"])
            return LatencyResult(**data)
    result = measure_latency(
        build_model(cfg, resolution=resolution),
        resolution,
        s.batch_size,
        s.device,
        s.dtype,
        s.channels_last,
        warmup=s.warmup,
        runs=s.runs,
        deploy=s.deploy,
        quiet=quiet,
    )
    if result.quiet:
        atomic_write(path, json.dumps(result.to_dict()))
    return result


def latency_cache_path(
    cfg: ArchConfig, cache_dir: str | Path, resolution: tuple[int, int], settings: LatencyOptions
) -> Path:
    """Where :func:`cached_latency` keeps this measurement (the device name includes the thread count)."""
    s = settings
    key = stable_id(
        {
            "arch": cfg.id,
            "resolution": list(resolution),
            "batch": s.batch_size,
            "device": device_name(s.device),
            "dtype": s.dtype,
            "channels_last": s.channels_last,
            "runs": s.runs,
            "deploy": s.deploy,
        }
    )
    return Path(cache_dir) / f"latency-{key}.json"


class _LiveTensorPeak(TorchDispatchMode):
    """Peak bytes of tensor storages alive at once during a forward (CPU has no allocator stats)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in _tensors(out):
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key and key not in self._seen:
                self._seen.add(key)
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
                # the Python tensor dies with its last reference, which frees the storage here
                weakref.finalize(t, self._free, key, storage.nbytes())
        return out

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes


def _tensors(out: Any) -> Iterator[torch.Tensor]:
    return (t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
