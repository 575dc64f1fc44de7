"""Run (or resume) a sweep: Ray Tune runs the trials, an Optuna study decides and records them.

    from radio_nas.search.sweep import run_sweep
    outcome = run_sweep("search_spaces/smoke.yaml")              # results/smoke/
    outcome["pareto"], outcome["results_dir"], outcome["storage"]

The same call on an existing results folder resumes the study: finished trials are kept, trials a
dead driver left RUNNING are marked FAIL and their parameters queued again, and the budget counts
trained trials already in the study. An edited space pointed at the folder resumes as the folder's
next revision: what changed is printed, the finished trials that are points of the new space are
kept (the sampler sees them), the others are set aside; another pipeline or other objectives are
refused, and ``fresh=True`` moves the old folder aside and starts over. ``warm_start`` imports the
trained trials of other studies (see :mod:`radio_nas.search.carry`). A second live driver on the
same study is refused (see :mod:`radio_nas.search.optuna_study`).

Concurrency: ``concurrency`` trials train side by side, each with ``resources.cpu`` CPUs (one torch
thread per CPU unless the pipeline sets ``student.threads``). On a local Ray a latency is timed
with the running trials paused at a step boundary (:mod:`radio_nas.search.gate`), so every
latency is still timed on an otherwise idle machine while training goes on between timings; the
driver's own torch work (sampling, GMACs) uses one thread while trials fill the cores.

Ray: without ``address`` the sweep starts a local Ray bound to the loopback interface
(127.0.0.1); with ``address`` it joins that cluster as configured there. The sweep never turns
Ray's token authentication off (set ``RAY_AUTH_MODE`` yourself if you must). Trial workers on
this machine exit when the driver process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError
from radio_nas.search.carry import Source, open_sources
from radio_nas.search.gate import gate_folder
from radio_nas.search.searcher import StudySearcher, TrainedHook
from radio_nas.search.space import Space, load_space, parse_duration
from radio_nas.study.layout import HASH_FILE, LOCK_FILE, RAY_DIR, STUDY_FILE, check_no_links, default_storage

DEFAULT_TRIALS = 20
_QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
}
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray's single-machine mode: its processes use the loopback address instead of the host's."""


def run_sweep(
    space_source: str | Path | Space,
    *,
    results_dir: str | Path | None = None,
    storage: str | None = None,
    address: str | None = None,
    trials: int | None = None,
    wall_time: Any = None,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    overrides: dict[str, Any] | None = None,
    on_trained: TrainedHook | None = None,
    progress: Callable[[str], None] | None = print,
    warm_start: str | Sequence[str] | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run or resume the sweep of a space file; returns counts, the Pareto set and where results are.

    `warm_start`: ``RESULTS_OR_STORAGE[#STUDY][,...]`` whose trained trials are imported first;
    `fresh`: move an existing results folder aside (``<folder>.before-<time>``) and start a new study.

    Everything is validated before anything is written: a bad space raises ConfigError and leaves
    no results folder behind. `on_trained` is called for each trained trial before it is told
    (``radio-nas sweep`` attaches PCA pictures with it; see :data:`TrainedHook`).
    """
    space = space_source if isinstance(space_source, Space) else load_space(space_source, overrides)
    cfg = space.config
    results = Path(results_dir) if results_dir is not None else Path("results") / space.name
    from radio_nas.search.optuna_study import check_folder

    storage_url = storage or cfg.storage or default_storage(results)
    wall_s = (
        parse_duration(wall_time, key="--time")
        if wall_time is not None
        else parse_duration(cfg.budget.wall_time, key="budget.wall_time")
    )
    conc = concurrency if concurrency is not None else cfg.concurrency
    if trials is not None and trials < 1:
        raise ConfigError(f"expected an integer >= 1, got {trials}", key="--trials")
    if conc < 1:
        raise ConfigError(f"expected an integer >= 1, got {conc}", key="--concurrency")
    check_no_links(results)  # no write below may follow a link out of the folder
    if not fresh:
        check_folder(space, results, storage_url)  # refuse a meaningless edit before touching anything
    sources: list[Source] = []
    if warm_start:
        if cfg.mode == "ablation":
            raise ConfigError("an ablation runs its own design; warm start is for search mode", key="--warm-start")
        sources = open_sources(warm_start, space, here=results)  # read-only: a bad source writes nothing
    for k, v in _QUIET_ENV.items():
        os.environ.setdefault(k, v)
    moved = None
    if fresh and results.exists():
        with _exclusive(results):
            moved = set_folder_aside(results, storage_url)
        if progress is not None:
            progress(f"[{space.name}] --fresh: the previous results of {results} are now in {moved}")
    with _exclusive(results):
        out = _run(space, results, storage_url, address, trials, wall_s, conc, num_cpus, on_trained, progress, sources)
    if moved is not None:
        out["previous_results"] = str(moved)
    return out


def _run(
    space: Space,
    results: Path,
    storage_url: str,
    address: str | None,
    trials: int | None,
    wall_s: float | None,
    conc: int,
    num_cpus: int | None,
    on_trained: TrainedHook | None,
    progress: Callable[[str], None] | None,
    sources: Sequence[Source] = (),
) -> dict[str, Any]:
    from radio_nas.search.ablation import queue_ablation
    from radio_nas.search.carry import import_trials
    from radio_nas.search.optuna_study import Driver, open_study, recover_orphans, trained_count
    from radio_nas.search.summary import ablation_summary, format_summary, pareto_rows, state_counts
    from radio_nas.study.record import StudyRecord, read_trials

    say = progress or (lambda line: None)
    cfg = space.config
    fresh = not (results / HASH_FILE).is_file()
    study = open_study(space, results, storage_url, say)
    driver = Driver.start(study)  # refuses a second live driver before anything changes
    imported = None
    try:
        if sources:
            imported = import_trials(study, space, sources)
            for line in imported.lines():
                say(f"[{space.name}] {line}")
        if cfg.mode == "ablation":
            queue_ablation(study, space)
        target = _target(space, trials)
        recovered = recover_orphans(study, driver)
        if recovered:
            say(
                f"[{space.name}] resumed: trials {recovered} were left running by a stopped sweep; marked FAIL "
                "(queued again unless they crashed the driver while it measured them)"
            )
        elif not fresh:
            say(f"[{space.name}] resuming: {trained_count(study)} of {target} trials already done")

        started = time.monotonic()
        threads = max(1, int(cfg.resources.cpu)) if cfg.resources.cpu >= 1 else 1
        searcher = StudySearcher(
            space,
            study,
            results,
            trials=target,
            wall_time_s=wall_s,
            concurrency=conc,
            threads=threads,
            driver_id=driver.id,
            on_trained=on_trained,
            progress=say,
            pause_gate=gate_folder(results / RAY_DIR) if address is None else None,
        )
        stop = _fit(space, searcher, results, address, num_cpus) if trained_count(study) < target else None
        searcher.close()
        recover_orphans(study, driver)  # anything Tune left unfinished (interrupt, crash) runs again on resume
        if stop is not None and stop != _SIGINT:
            _queue_disk_full_again(study, driver.id)
    finally:
        driver.stop()
    wall = time.monotonic() - started
    stats = searcher.stats()
    abl = ablation_summary(study, space.objective_names) if cfg.mode == "ablation" else None
    say(format_summary(study, space, results, storage_url, abl))
    if stop is not None and stop != _SIGINT:
        raise OSError(
            errno.ENOSPC,
            f"no space left on device, sweep stopped; {trained_count(study)} trained trials are kept, the one "
            f"that could not write is queued again: free some space and run the same command ({stop[:200]})",
            str(results),
        )
    if stop == _SIGINT:
        raise SweepInterrupted(
            f"{trained_count(study)} trained trials are kept in {results}; the same command resumes "
            "(trials cut short run again)"
        )
    return {
        "name": space.name,
        "results_dir": str(results),
        "storage": storage_url,
        "study": study.study_name,
        "target": target,
        "trained": trained_count(study),
        "counts": state_counts(read_trials(study)),
        "wall_s": wall,
        "stop_reason": stats.stop_reason,
        "pareto": pareto_rows(study, space),
        "ablation": abl,
        "trial_wall_s": list(stats.trained_wall_s),
        "trial_seen_s": list(stats.trial_seen_s),
        "concurrency": conc,
        "gate_pauses": stats.gate_pauses,
        "gate_s": stats.gate_s,
        "warm_start": imported.to_dict() if imported is not None else None,
        "revision": StudyRecord.from_study(study).revision,
    }


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the sweep: its trials were stopped and recorded, Ray shut down."""


_SIGINT = "SIGINT"


def _is_disk_full(reason: str) -> bool:
    return f"[Errno {errno.ENOSPC}]" in reason or "No space left on device" in reason or "disk is full" in reason


def _disk_full_stopper() -> Any:
    """A Tune stopper ending the sweep at the first trial that failed on a full disk: every trial
    after it would fail the same way, and be counted by the budget."""
    import json

    from ray import tune

    from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY

    class DiskFull(tune.Stopper):
        reason: str | None = None

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            if result.get(FINAL_KEY) and self.reason is None:
                try:
                    why = str(json.loads(result[RESULT_KEY]).get("failure_reason") or "")
                except (KeyError, TypeError, ValueError):
                    why = ""
                if _is_disk_full(why):
                    self.reason = why
            return False

        def stop_all(self) -> bool:
            return self.reason is not None

    return DiskFull()


def _queue_disk_full_again(study: Any, driver_id: str) -> None:
    """The variants this driver's trials could not write (full disk) train again on resume."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        if t.user_attrs.get("driver") == driver_id and _is_disk_full(str(t.user_attrs.get("failure_reason") or "")):
            if t.params:
                study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})


def _fit(space: Space, searcher: StudySearcher, results: Path, address: str | None, num_cpus: int | None) -> str | None:
    """Run the trials through Ray Tune; what stopped them early: _SIGINT, a full disk's failure
    reason, or None."""
    import ray
    import torch
    from ray import tune

    from radio_nas.search.trainable import train_trial

    cfg = space.config
    started_ray = False
    driver_threads = torch.get_num_threads()
    if not ray.is_initialized():
        start_ray(address, num_cpus)
        started_ray = True
    try:
        total = ray.cluster_resources()
        if cfg.resources.cpu > total.get("CPU", 0) or cfg.resources.gpu > total.get("GPU", 0):
            raise ConfigError(
                f"a trial asks for cpu={cfg.resources.cpu:g} gpu={cfg.resources.gpu:g} but the Ray cluster has "
                f"CPU={total.get('CPU', 0):g} GPU={total.get('GPU', 0):g}",
                key="resources",
            )
        scheduler = None
        if cfg.scheduler.name == "asha":
            from ray.tune.schedulers import ASHAScheduler

            grace = cfg.scheduler.grace_period or max(space.pipeline.eval.every, 1)
            scheduler = ASHAScheduler(
                time_attr="step",
                metric="fidelity",
                mode="max",
                max_t=max(space.pipeline.steps, grace),
                grace_period=grace,
                reduction_factor=cfg.scheduler.reduction_factor,
                stop_last_trials=False,
            )
        elif cfg.scheduler.name == "moasha":
            from radio_nas.search.mo_scheduler import tune_scheduler

            scheduler = tune_scheduler(space, searcher.costs_of, searcher.record_curve)
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, driver=_driver_watch(address)),
            {"cpu": cfg.resources.cpu, "gpu": cfg.resources.gpu},
        )
        disk_full = _disk_full_stopper()
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str((results / RAY_DIR).resolve()),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                stop=disk_full,
            ),
        )
        if searcher.concurrency * max(cfg.resources.cpu, 1) >= (os.cpu_count() or 1):
            # the trials take every core: the driver's GP fits and GMACs counts would only contend
            torch.set_num_threads(1)
        return _SIGINT if _fit_noting_sigint(tuner) else disk_full.reason
    finally:
        torch.set_num_threads(driver_threads)
        if started_ray:
            ray.shutdown()


def _fit_noting_sigint(tuner: Any) -> bool:
    """``tuner.fit()``; True when a SIGINT stopped it. Tune takes the first SIGINT itself (it stops
    the trials, saves its state and returns as if done), then puts back the handler it found: ours,
    so finding ours in place afterwards is how an interrupt shows. A second SIGINT raises at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or os.environ.get("TUNE_DISABLE_SIGINT_HANDLER"):
        tuner.fit()
        return False

    def again(signum: int, frame: Any) -> None:
        raise SweepInterrupted("stopped at once (a second Ctrl-C); trials that were running run again on resume")

    previous = signal.signal(signal.SIGINT, again)
    try:
        tuner.fit()
        return signal.getsignal(signal.SIGINT) is again
    finally:
        signal.signal(signal.SIGINT, previous)


def start_ray(address: str | None, num_cpus: int | None) -> None:
    """Join the Ray cluster at `address`, or start a local one on the loopback interface."""
    import ray

    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "ERROR",
    }
    if address:
        ray.init(address=address, **kwargs)
        return
    from ray._private import ray_constants

    # Ray's single-machine mode (what it does on macOS): the node address is the loopback one, so
    # the GCS, raylet, workers and driver listen on 127.0.0.1. Ray reads the switch when it is
    # imported, long before this call: set it for the processes ray.init starts now, and for this
    # process only while it starts them (a later cluster join in the same process is unaffected).
    saved_env = {k: os.environ.get(k) for k in _LOOPBACK_ENV}
    saved = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(_LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _driver_watch(address: str | None) -> dict[str, Any] | None:
    """What a worker needs to exit with this driver: its pid and host (local Ray only)."""
    if address:
        return None  # a cluster's workers may live on other hosts: Ray's own fate-sharing applies
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}


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


def set_folder_aside(results: Path, storage_url: str) -> Path:
    """``--fresh``: move a results folder to ``<folder>.before-<time>`` (its study, in the default
    SQLite file, moves with it; studies of it in another storage are re-pointed there). Returns
    where it went; nothing is deleted."""
    import optuna

    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = results.with_name(f"{results.name}.before-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = results.with_name(f"{results.name}.before-{stamp}-{n}")
    here = str(results.resolve())
    inside = storage_url == default_storage(results)
    results.rename(dest)
    url = default_storage(dest) if inside else storage_url
    if inside and not (dest / STUDY_FILE).is_file():
        return dest
    from radio_nas.search.optuna_study import make_storage
    from radio_nas.study.record import write_study

    storage = make_storage(url)
    for s in optuna.get_all_study_summaries(storage):
        if s.user_attrs.get("results_dir") == here:
            write_study(optuna.load_study(study_name=s.study_name, storage=storage), results_dir=str(dest.resolve()))
    return dest


@contextlib.contextmanager
def _exclusive(results: Path) -> Iterator[None]:
    """One driver per results folder (the lock dies with the process, so SIGKILL never blocks a resume)."""
    try:
        results.mkdir(parents=True, exist_ok=True)
        fh = open(results / LOCK_FILE, "w")
    except OSError as exc:
        raise ConfigError(f"cannot create the results folder: {exc.strerror}", file=results, key="--results") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another sweep is running on {results} (lock {results / LOCK_FILE})", key="results"
            ) from None
        yield
    finally:
        fh.close()
