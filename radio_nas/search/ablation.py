"""Ablation mode: a grid or one-factor-at-a-time (OFAT) design around a base, k seeds per point.

    >>> points = ablation_points(space)           # encoded Optuna params, one dict per trial
    >>> rows = ablation_summary(study, space)     # mean ± 95% CI per factor level

Every point runs ``ablation.seeds`` times with pipeline seeds ``seed, seed+1, ...`` (the seed of
the pipeline), as the implicit parameter ``pipeline.seed``. The points are enqueued in the study
when it is created, so a resumed ablation simply continues the queue.
"""
from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

from radio_nas.search.space import Space, encode_choice

SEED_PARAM = "pipeline.seed"


def factors(space: Space) -> dict[str, tuple[Any, ...]]:
    """Varying parameters (the implicit seed excluded) and their levels."""
    return {p.name: p.finite_values or () for p in space.sampled if p.name != SEED_PARAM}


def base_levels(space: Space) -> dict[str, Any]:
    return {name: space.config.ablation.base.get(name, levels[0]) for name, levels in factors(space).items()}


def ablation_points(space: Space) -> list[dict[str, Any]]:
    """The trials of the design, seeds innermost, as Optuna params (choices encoded)."""
    levels = factors(space)
    base = base_levels(space)
    if space.config.ablation.design == "grid":
        points = [dict(zip(levels, combo)) for combo in itertools.product(*levels.values())]
    else:
        points = [dict(base)]
        for name, values in levels.items():
            points += [{**base, name: v} for v in values if v != base[name]]
    seeds = seed_values(space)
    return [{**{k: encode_choice(v) for k, v in pt.items()}, SEED_PARAM: s} for pt in points for s in seeds]


def seed_values(space: Space) -> list[int]:
    return [space.pipeline.seed + i for i in range(space.config.ablation.seeds)]


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its t-distribution confidence interval (nan for n < 2)."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan
    sem = statistics.stdev(values) / math.sqrt(n)
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem


def ablation_summary(study: Any, space: Space, metric: str = "fidelity") -> list[dict[str, Any]]:
    """One row per factor level: n, mean, ± 95% CI of `metric` over trained (status ok) trials.

    OFAT: a level's trials are those with every other factor at its base level; grid: all trials
    at that level (the marginal mean over the other factors)."""
    levels = factors(space)
    base = {k: encode_choice(v) for k, v in base_levels(space).items()}
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == "ok"]
    rows = []
    for name, values in levels.items():
        for level in values:
            enc = encode_choice(level)
            picked = []
            for t in trials:
                if t.params.get(name) != enc:
                    continue
                if space.config.ablation.design == "ofat" and any(
                        t.params.get(o) != base[o] for o in levels if o != name):
                    continue
                value = _metric(t, metric)
                if value is not None:
                    picked.append(value)
            mean, ci = mean_ci(picked) if picked else (math.nan, math.nan)
            rows.append({"factor": name, "level": level, "base": enc == base[name], "n": len(picked),
                         "mean": mean, "ci95": ci})
    return rows


def _metric(trial: Any, metric: str) -> float | None:
    if metric in ("params", "gmacs", "latency_ms"):
        value = trial.user_attrs.get(metric)
    else:
        value = (trial.user_attrs.get("metrics") or {}).get(metric)
    return None if value is None else float(value)
