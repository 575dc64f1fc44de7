"""Run (or resume) a sweep: Ray Tune runs the trials, an Optuna study decides and records them.

    >>> from radio_nas.search.sweep import run_sweep
    >>> outcome = run_sweep("search_spaces/smoke.yaml")              # results/smoke/
    >>> outcome["pareto"], outcome["results_dir"], outcome["storage"]

The same call on an existing results folder resumes the study: finished trials are kept, trials a
dead driver left RUNNING are marked FAIL and their parameters queued again, and the budget counts
trained trials already in the study. A different space pointed at the folder is refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from radio_nas._config import ConfigError
from radio_nas.search.space import Space, load_space, parse_duration

DEFAULT_TRIALS = 20
_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0",
              "RAY_AIR_NEW_OUTPUT": "0",
              "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000"}


def run_sweep(space_source: str | Path | Space, *, results_dir: str | Path | None = None,
              storage: str | None = None, address: str | None = None, trials: int | None = None,
              wall_time: Any = None, concurrency: int | None = None, num_cpus: int | None = None,
              overrides: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run or resume the sweep of a space file; returns counts, the Pareto set and where results are.

    Everything is validated before anything is written: a bad space raises ConfigError and leaves
    no results folder behind.
    """
    space = space_source if isinstance(space_source, Space) else load_space(space_source, overrides)
    cfg = space.config
    results = Path(results_dir) if results_dir is not None else Path("results") / space.name
    from radio_nas.search.study import default_storage

    storage_url = storage or cfg.storage or default_storage(results)
    wall_s = parse_duration(wall_time, key="--time") if wall_time is not None else \
        parse_duration(cfg.budget.wall_time, key="budget.wall_time")
    conc = concurrency or cfg.concurrency
    if trials is not None and trials < 1:
        raise ConfigError(f"expected an integer >= 1, got {trials}", key="--trials")
    if conc < 1:
        raise ConfigError(f"expected an integer >= 1, got {conc}", key="--concurrency")
    from radio_nas.search.study import check_folder

    check_folder(space, results)  # refuse a different space before touching anything
    for k, v in _QUIET_ENV.items():
        os.environ.setdefault(k, v)

    with _exclusive(results):
        return _run(space, results, storage_url, address, trials, wall_s, conc, num_cpus, progress)


def _run(space: Space, results: Path, storage_url: str, address: str | None, trials: int | None,
         wall_s: float | None, conc: int, num_cpus: int | None,
         progress: Callable[[str], None] | None) -> dict[str, Any]:
    from radio_nas.search.ablation import ablation_points, ablation_summary
    from radio_nas.search.searcher import StudySearcher
    from radio_nas.search.study import HASH_FILE, open_study, recover_orphans, trained_count
    from radio_nas.search.summary import format_summary, pareto_rows, state_counts

    say = progress or (lambda line: None)
    cfg = space.config
    fresh = not (results / HASH_FILE).is_file()
    study = open_study(space, results, storage_url)
    if cfg.mode == "ablation" and not study.get_trials(deepcopy=False):
        for params in ablation_points(space):
            study.enqueue_trial(params)
    target = _target(space, trials)
    recovered = recover_orphans(study)
    if recovered:
        say(f"[{space.name}] resumed: trials {recovered} were left running by a stopped sweep; "
            "marked FAIL and queued again")
    elif not fresh:
        say(f"[{space.name}] resuming: {trained_count(study)} of {target} trials already done")

    started = time.monotonic()
    searcher = StudySearcher(space, study, results, trials=target, wall_time_s=wall_s, concurrency=conc,
                             threads=max(1, int(cfg.resources.cpu)) if cfg.resources.cpu >= 1 else 1,
                             progress=say)
    if trained_count(study) < target:
        _fit(space, searcher, results, address, num_cpus, say)
    searcher.close()
    recover_orphans(study)  # anything Tune left unfinished (interrupt, crash) runs again on resume
    wall = time.monotonic() - started

    abl = ablation_summary(study, space) if cfg.mode == "ablation" else None
    say(format_summary(study, space, results, storage_url, abl))
    return {"name": space.name, "results_dir": str(results), "storage": storage_url,
            "study": study.study_name, "target": target, "trained": trained_count(study),
            "counts": state_counts(study), "wall_s": wall, "stop_reason": searcher.stop_reason,
            "pareto": pareto_rows(study, space), "ablation": abl,
            "trial_wall_s": list(searcher.trained_here), "trial_seen_s": list(searcher.trial_seconds)}


def _fit(space: Space, searcher: Any, results: Path, address: str | None, num_cpus: int | None,
         say: Callable[[str], None]) -> None:
    import ray
    from ray import tune

    from radio_nas.search.trainable import train_trial

    cfg = space.config
    started_ray = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": True, "logging_level": "ERROR"}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
        started_ray = True
    try:
        total = ray.cluster_resources()
        if cfg.resources.cpu > total.get("CPU", 0) or cfg.resources.gpu > total.get("GPU", 0):
            raise ConfigError(f"a trial asks for cpu={cfg.resources.cpu:g} gpu={cfg.resources.gpu:g} but the Ray "
                              f"cluster has CPU={total.get('CPU', 0):g} GPU={total.get('GPU', 0):g}",
                              key="resources")
        scheduler = None
        if cfg.scheduler.name == "asha":
            from ray.tune.schedulers import ASHAScheduler
            grace = cfg.scheduler.grace_period or max(space.pipeline.eval.every, 1)
            scheduler = ASHAScheduler(time_attr="step", metric="fidelity", mode="max",
                                      max_t=max(space.pipeline.steps, grace), grace_period=grace,
                                      reduction_factor=cfg.scheduler.reduction_factor,
                                      stop_last_trials=False)
        elif cfg.scheduler.name == "moasha":
            from radio_nas.search.mo_scheduler import tune_scheduler
            live = searcher.live  # tune trial id -> Optuna trial, whose user attrs hold the measured costs
            scheduler = tune_scheduler(space, lambda tid: live[tid].user_attrs if tid in live else None,
                                       lambda tid, curve: live[tid].set_user_attr("curve", curve)
                                       if tid in live else None)
        trainable = tune.with_resources(train_trial, {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu})
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str((results / "ray").resolve()), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))
        tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()


def _target(space: Space, trials: int | None) -> int:
    """Trained trials to reach: --trials, else budget.trials, else the grid/ablation size, else 20."""
    if trials is not None:
        return trials
    if space.config.budget.trials is not None:
        return space.config.budget.trials
    if space.config.mode == "ablation":
        from radio_nas.search.ablation import ablation_points
        return len(ablation_points(space))
    if space.config.sampler.name == "grid":
        return space.grid_size() or DEFAULT_TRIALS
    return DEFAULT_TRIALS


@contextlib.contextmanager
def _exclusive(results: Path) -> Iterator[None]:
    """One driver per results folder (the lock dies with the process, so SIGKILL never blocks a resume)."""
    results.mkdir(parents=True, exist_ok=True)
    fh = open(results / ".sweep.lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another sweep is running on {results} (lock {results / '.sweep.lock'})",
                              key="results") from None
        yield
    finally:
        fh.close()
