"""Multi-objective asynchronous successive halving (MOASHA) for sweeps with any number of objectives.

    from radio_nas.search.mo_scheduler import MOSuccessiveHalving
    sh = MOSuccessiveHalving(["maximize", "minimize"], grace_period=2, reduction_factor=3, max_t=20)
    sh.rungs
    (2, 6, 18)
    sh.on_result("a", step=2, value=0.5, costs=[1.0])      # first at the rung: continues
    True

Rungs sit at ``grace_period × η^k`` steps (below ``max_t``). When a trial first reports at or past
a rung, its point there (the intermediate fidelity, then the objectives known before training:
params / GMACs / latency) is recorded, and every point recorded at that rung so far is ordered by
non-dominated sorting, ties within a front broken by crowding distance (NSGA-II's, as MOASHA does;
boundary points first, then arrival order). The trial continues when it is among the first
``ceil(n / η)`` of the ``n`` recorded points, else it is stopped. As in ASHA the decision is
asynchronous: it only looks at trials that reached the rung before. With one objective this is
ASHA's rule (a trial below the top 1/η at its rung stops).

Our case is simpler than MOASHA's: only fidelity evolves during training, the cost objectives are
exact before training starts. A cheap variant with a mediocre curve therefore survives a rung that
an expensive variant with the same curve does not.

Used by real sweeps (``scheduler: {name: moasha}``; :func:`tune_scheduler` wraps it as a Ray Tune
scheduler) and by ``radio-nas replay`` (which calls :meth:`MOSuccessiveHalving.on_result` directly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from radio_nas._config import ConfigError
from radio_nas.study.pareto import pareto_ranks

if TYPE_CHECKING:
    from radio_nas.search.space import Space

PRE_TRAINING_METRICS = ("params", "gmacs", "latency_ms")
"""Objectives known before a trial trains (measured by the sweep driver)."""


class MOSuccessiveHalving:
    """Rung bookkeeping and stop decisions (no Ray; see the module docstring)."""

    def __init__(self, directions: Sequence[str], *, grace_period: int, reduction_factor: float, max_t: int):
        if grace_period < 1:
            raise ConfigError(f"expected an integer >= 1, got {grace_period}", key="scheduler.grace_period")
        if not reduction_factor > 1 or not math.isfinite(reduction_factor):  # NaN compares false
            raise ConfigError(f"expected a number > 1, got {reduction_factor}", key="scheduler.reduction_factor")
        if not directions:
            raise ConfigError("expected at least one objective (the evolving metric)", key="objectives")
        self.directions = list(directions)
        self.eta = float(reduction_factor)
        levels = []
        level = float(grace_period)
        while level < max_t:
            levels.append(round(level))
            level *= self.eta
        self.rungs: tuple[int, ...] = tuple(dict.fromkeys(levels))
        self._recorded: dict[int, dict[Hashable, tuple[float, ...]]] = {r: {} for r in self.rungs}

    def recorded(self, rung: int) -> dict[Hashable, tuple[float, ...]]:
        """Trial -> point (value, costs...) recorded at `rung`, in arrival order."""
        return dict(self._recorded[rung])

    def on_result(self, trial_id: Hashable, *, step: int, value: float, costs: Sequence[float]) -> bool:
        """A trial's intermediate `value` at `step`; False means stop it now.

        Only the highest rung the trial has passed and not yet been judged at is considered (a trial
        is judged at most once per rung, like ASHA).
        """
        if len(costs) != len(self.directions) - 1:
            raise ValueError(f"expected {len(self.directions) - 1} cost values, got {len(costs)}")
        if not math.isfinite(value):
            return False  # a diverged trial never gets better
        for rung in reversed(self.rungs):
            if step < rung:
                continue
            here = self._recorded[rung]
            if trial_id in here:
                return True
            here[trial_id] = (float(value), *(float(c) for c in costs))
            return self._keeps(rung, trial_id)
        return True

    def _keeps(self, rung: int, trial_id: Hashable) -> bool:
        here = self._recorded[rung]
        ids = list(here)
        order = rank_order(np.array([here[i] for i in ids], dtype=float), self.directions)
        keep = math.ceil(len(ids) / self.eta)
        return ids.index(trial_id) in set(order[:keep].tolist())


def rank_order(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Row indices of `points` (n, m) best first: non-dominated rank, then crowding distance
    (larger first), then row order."""
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=int)
    ranks = pareto_ranks(points, directions)
    crowd = np.zeros(n)
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding_distance(points[idx])
    return np.array(sorted(range(n), key=lambda i: (ranks[i], -crowd[i], i)), dtype=int)


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row among `points` (one front); extremes get inf."""
    n, m = points.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(points[:, j], kind="stable")
        col = points[order, j]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span <= 0:
            continue
        dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def scheduler_objectives(space: Space) -> tuple[list[str], list[str]]:
    """(cost metrics, directions with fidelity's first) a space's MOASHA ranks by."""
    objs = space.config.objectives
    fid = [o for o in objs if o.metric == "fidelity"]
    if not fid:
        raise ConfigError(
            "moasha stops trials on their intermediate fidelity; add a fidelity objective", key="scheduler.name"
        )
    costs = [o for o in objs if o.metric in PRE_TRAINING_METRICS]
    directions: list[str] = [fid[0].direction, *(o.direction for o in costs)]
    return [o.metric for o in costs], directions


def from_space(
    space: Space, *, max_t: int | None = None, grace_period: int | None = None, reduction_factor: float | None = None
) -> MOSuccessiveHalving:
    """The MOASHA of a space: its scheduler settings, grace period defaulting to eval.every."""
    sched = space.config.scheduler
    _, directions = scheduler_objectives(space)
    pipeline = space.pipeline
    every = getattr(getattr(pipeline, "eval", None), "every", None) or 1
    grace = grace_period or sched.grace_period or every
    steps = max_t if max_t is not None else getattr(pipeline, "steps", grace + 1)
    return MOSuccessiveHalving(
        directions,
        grace_period=grace,
        reduction_factor=reduction_factor or sched.reduction_factor,
        max_t=max(int(steps), grace),
    )


def tune_scheduler(
    space: Space,
    costs_of: Callable[[str], dict[str, Any] | None],
    on_stop: Callable[[str, list[dict[str, Any]]], None] | None = None,
) -> Any:
    """A Ray Tune scheduler running :class:`MOSuccessiveHalving` on the ``step``/``fidelity`` reports.

    `costs_of(tune_trial_id)` gives the pre-training metrics the sweep driver measured for a trial
    (None when unknown: the trial then continues). `on_stop(tune_trial_id, curve)` is called before a
    trial is stopped with its curve so far, ``[{step, fidelity, seconds}]`` (seconds: the trial's
    clock as run_trial reports it, else Ray's ``time_total_s``), so the driver can record it on the PRUNED trial.
    """
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    cost_names, _ = scheduler_objectives(space)
    core = from_space(space)
    curves: dict[str, list[dict[str, Any]]] = {}

    class MOASHAScheduler(FIFOScheduler):
        """Ray Tune face of the rung logic; a stopped trial reaches the searcher without a final result."""

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            step, value = result.get("step"), result.get("fidelity")
            if step is None or value is None:  # the final report carries no step: never stopped
                return str(TrialScheduler.CONTINUE)
            curve = curves.setdefault(trial.trial_id, [])
            seconds = result.get("seconds", result.get("time_total_s"))  # the trial's clock, else Ray's
            curve.append({"step": int(step), "fidelity": float(value), "seconds": seconds})
            known = costs_of(trial.trial_id) or {}
            cost = [known.get(n) for n in cost_names]
            if any(c is None for c in cost):
                return str(TrialScheduler.CONTINUE)
            keep = core.on_result(
                trial.trial_id, step=int(step), value=float(value), costs=[float(c) for c in cost if c is not None]
            )
            if not keep and on_stop is not None:
                on_stop(trial.trial_id, list(curve))
            return str(TrialScheduler.CONTINUE if keep else TrialScheduler.STOP)

        def debug_string(self) -> str:
            return f"MOASHA: rungs {list(core.rungs)}, eta {core.eta:g}"

    return MOASHAScheduler()
