"""Build (or resume) the exhaustive table of a finite search space: a grid sweep over every point.

Runs the sweep with the grid sampler (wall-time budget lifted, trials = grid size) into a results
folder, then reads the table that ``radio-nas replay`` replays (:func:`radio_nas.simulate.table_from_study`).
Killed or interrupted, the same call resumes the sweep: finished trials are kept and none is re-run.
``python benchmarks/exhaustive.py SPACE`` is its command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError
from radio_nas.simulate.table import Table, missing_points, table_from_study


def exhaustive_space(source: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    """The space with the grid sampler and no wall-time budget (ConfigError if a parameter is continuous)."""
    from radio_nas.search.space import load_space

    space = load_space(source, {**(overrides or {}), "sampler.name": "grid", "budget.wall_time": None})
    if space.grid_size() is None:
        raise ConfigError("a parameter is continuous; an exhaustive table needs finitely many values", key="parameters")
    return space


def build_exhaustive(
    space: Any,
    results: Path,
    *,
    num_cpus: int | None = None,
    train: bool = True,
    progress: Callable[[str], None] = print,
) -> Table:
    """Sweep every point of `space` into `results` (unless `train` is False) and return its table."""
    if train:
        from radio_nas.search.optuna_study import open_study
        from radio_nas.search.sweep import run_sweep

        size = space.grid_size()
        started = time.monotonic()
        for attempt in range(2):
            out = run_sweep(space, results_dir=results, trials=size, num_cpus=num_cpus)
            progress(
                f"exhaustive: {out['trained']} trained trials, {out['counts']} after "
                f"{time.monotonic() - started:.0f}s (stop: {out['stop_reason']})"
            )
            study = open_study(space, results, out["storage"])
            missing = missing_points(study, space)
            if not missing or attempt:
                break
            # a grid sweep can end with points never proposed (older drivers queued a point after a
            # copy, which took a grid slot): queue them and sweep once more
            progress(f"exhaustive: {len(missing)} points have no finished trial; queued, sweeping again")
            for params in missing:
                study.enqueue_trial(params)
    return table_from_study(results)
