"""What a variant costs (params, GMACs, latency) and whether it fits a space's constraints.

Measured in the sweep driver before any training, so infeasible variants are never trained (a
latency that no constraint reads may be timed later: :mod:`radio_nas.search.searcher`).
Latency goes through :func:`radio_nas.measure.cached_latency` (keyed by arch id + settings).

    cost = measure_costs(arch_cfg, space.config.latency, resolution=(128, 128), need_latency=True)
    violations(cost, space.config.constraints)      # [] when feasible
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas._util import cache_root, parse_resolution
from radio_nas.search.space import Constraints, LatencySettings
from radio_nas.study.record import COST_METRICS, Objective, TrialRecord

if TYPE_CHECKING:
    from radio_nas.measure.latency import LatencyResult, Quiet
    from radio_nas.models import ArchConfig


@dataclasses.dataclass(frozen=True)
class Costs:
    params: int
    gmacs: float
    latency_ms: float | None = None
    latency_device: str | None = None
    latency_quiet: bool | None = None
    """False: timed while trials may have run (the pause gate timed out); None: not timed."""

    def as_metrics(self) -> dict[str, Any]:
        return {"params": self.params, "gmacs": self.gmacs, "latency_ms": self.latency_ms}


def latency_cache_dir() -> Path:
    """Shared by every sweep: ``latency/`` under the cache root (:func:`radio_nas._util.cache_root`)."""
    return cache_root() / "latency"


def measure_costs(
    arch_cfg: ArchConfig,
    settings: LatencySettings,
    resolution: tuple[int, int],
    need_latency: bool,
    quiet: Quiet | None = None,
) -> Costs:
    """Params and GMACs at `resolution` (batch 1); latency with `settings` when `need_latency`
    (`quiet`: around the timed runs only, see :data:`radio_nas.measure.latency.Quiet`)."""
    from radio_nas.measure import count_gmacs, count_params
    from radio_nas.models import build_model

    model = build_model(arch_cfg)
    params, gmacs = count_params(model), count_gmacs(model, resolution)
    if not need_latency:
        return Costs(params, gmacs)
    result = time_latency(arch_cfg, settings, resolution, quiet)
    return Costs(params, gmacs, result.median_ms, result.device_name, result.quiet)


def time_latency(
    arch_cfg: ArchConfig, settings: LatencySettings, resolution: tuple[int, int], quiet: Quiet | None = None
) -> LatencyResult:
    """The latency of `arch_cfg` with `settings`, timed (inside `quiet`) or read from the cache."""
    from radio_nas.measure import cached_latency

    with _threads(settings.threads):  # the device name (cache key) records the thread count
        return cached_latency(arch_cfg, latency_cache_dir(), _timed_at(settings, resolution), settings, quiet=quiet)


def _timed_at(settings: LatencySettings, resolution: tuple[int, int]) -> tuple[int, int]:
    """Latency is timed at `latency.resolution` when a space sets one, else at the trial's."""
    if settings.resolution is not None:
        return parse_resolution(settings.resolution, key="latency.resolution")
    return resolution


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def latency_is_cached(arch_cfg: ArchConfig, settings: LatencySettings, resolution: tuple[int, int]) -> bool:
    """True when :func:`measure_costs` would not time anything (used to wait for an idle device)."""
    from radio_nas.measure import latency_cache_path

    with _threads(settings.threads):
        return latency_cache_path(arch_cfg, latency_cache_dir(), _timed_at(settings, resolution), settings).is_file()


def violations(costs: Costs, constraints: Constraints) -> list[str]:
    """Human-readable broken constraints, e.g. ['gmacs 3.1 > max_gmacs 2']."""
    out = []
    checks = (
        ("params", costs.params, constraints.max_params),
        ("gmacs", costs.gmacs, constraints.max_gmacs),
        ("latency_ms", costs.latency_ms, constraints.max_latency_ms),
    )
    for name, value, limit in checks:
        if limit is not None and value is not None and value > limit:
            out.append(f"{name} {value:.4g} > max_{name} {limit:.4g}")
    return out


def constraint_limits(constraints: Constraints) -> dict[str, float | None]:
    """Cost metric -> its limit (None: unbounded), as :func:`radio_nas.study.record.constraint_values` takes."""
    c = constraints
    return {"params": c.max_params, "gmacs": c.max_gmacs, "latency_ms": c.max_latency_ms}


def stand_in_values(
    objectives: Sequence[Objective], known: Mapping[str, Any], trained: Sequence[TrialRecord]
) -> list[float]:
    """Objective values for an infeasible variant told COMPLETE (NSGA-II and GP only learn from
    COMPLETE trials): its measured costs, and for trained metrics the worst value among the `trained`
    candidates so far (0 before any). Its violated constraints keep it off every front."""
    out = []
    for obj in objectives:
        if obj.metric in COST_METRICS and known.get(obj.metric) is not None:
            out.append(float(known[obj.metric]))
            continue
        seen = [v for r in trained if r.is_candidate and (v := r.metric(obj.metric)) is not None]
        out.append((min(seen) if obj.direction == "maximize" else max(seen)) if seen else 0.0)
    return out
