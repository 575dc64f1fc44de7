"""The Optuna study behind a sweep: creation, the results-folder conventions, resume.

The study is the source of truth. A results folder ``results/<name>/`` holds ``study.db`` (the
default SQLite storage), ``space.yaml`` (a copy of the space file) and ``trials/<number>/``.

    >>> study = open_study(space, results_dir, storage_url)      # create, or reopen and check the space
    >>> recovered = recover_orphans(study)                       # RUNNING from a dead driver -> FAIL + re-enqueued
    >>> trained_count(study)                                     # what the budget counts

Trial states: COMPLETE only for fully trained trials (user attr status "ok"); infeasible variants
(constraints or model rejected them) are PRUNED with status "infeasible" and never trained;
ASHA-stopped trials are PRUNED with status "pruned"; failures are FAIL with a reason. Pareto
fronts (``study.best_trials``) only ever see COMPLETE trials.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from radio_nas import __version__
from radio_nas._config import ConfigError
from radio_nas.search.space import Space

TRAINED_STATUSES = ("ok", "failed", "pruned")
HASH_FILE = ".space_hash"  # what the folder's study searches; compared on resume
ORPHAN_REASON = "the sweep driver stopped while this trial ran; its parameters were queued again"


def default_storage(results_dir: Path) -> str:
    return f"sqlite:///{(results_dir / 'study.db').as_posix()}"


def study_name(space: Space) -> str:
    """Unique per space content, so two spaces never share a study in one storage."""
    return f"{space.name}-{space.hash[:8]}"


def make_storage(url: str) -> Any:
    """An Optuna storage object (Ray's OptunaSearch and friends need the object, not a URL)."""
    import optuna

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else None)
    except Exception as exc:  # bad URL, driver missing, server down
        raise ConfigError(f"cannot open Optuna storage {url!r}: {exc}", key="storage") from None


def make_sampler(space: Space) -> Any:
    import optuna

    s = space.config.sampler
    if space.config.mode == "ablation":
        return optuna.samplers.RandomSampler(seed=s.seed)  # every ablation trial is enqueued
    if s.name == "tpe":
        kw = {"n_startup_trials": s.n_startup_trials} if s.n_startup_trials is not None else {}
        return optuna.samplers.TPESampler(seed=s.seed, **kw)
    if s.name == "nsga2":
        kw = {"population_size": s.n_startup_trials} if s.n_startup_trials is not None else {}
        return optuna.samplers.NSGAIISampler(seed=s.seed, **kw)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.name == "gp":
        kw = {"n_startup_trials": s.n_startup_trials} if s.n_startup_trials is not None else {}
        return optuna.samplers.GPSampler(seed=s.seed, **kw)
    grid = space.grid()
    assert grid is not None, "checked when the space was loaded"
    return _ask_tell_grid_sampler(grid, s.seed)


def _ask_tell_grid_sampler(grid: dict[str, list[Any]], seed: int | None) -> Any:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):  # type: ignore[misc]
        """Optuna's GridSampler calls ``study.stop()`` after the last point, which raises outside
        ``study.optimize()`` (ask-and-tell): the last tell of a grid sweep crashed the Tune loop. The
        searcher stops at the grid's end itself (``StudySearcher._exhausted``)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(grid, seed=seed)


def open_study(space: Space, results_dir: Path, storage_url: str) -> Any:
    """Create the study (and folder) or reopen it; a different space on the same folder is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results_dir = Path(results_dir)
    check_folder(space, results_dir)
    storage = make_storage(storage_url)
    name = study_name(space)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    mine = [s for s in existing.values() if s.user_attrs.get("results_dir") == str(results_dir.resolve())
            and s.study_name != name]
    if mine:
        raise ConfigError(f"storage {storage_url} already holds study {mine[0].study_name!r} for "
                          f"{results_dir} from a different space (hash {mine[0].user_attrs.get('space_hash')}); "
                          "use another results folder (--results) or the original space file", key="name")
    created = name not in existing
    study = optuna.create_study(storage=storage, study_name=name, directions=space.objective_directions,
                                sampler=make_sampler(space), load_if_exists=True)
    if created:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(space.objective_names)
        attrs = {"radio_nas_version": __version__, "space_name": space.name,
                 "space_file": str(space.file) if space.file else None, "space_hash": space.hash,
                 "mode": space.config.mode,
                 "objectives": [{"metric": o.metric, "direction": o.direction} for o in space.config.objectives],
                 "pipeline": space.pipeline.to_dict(), "results_dir": str(results_dir.resolve()),
                 "parameters": [p.name for p in space.params if not p.fixed]}
        for k, v in attrs.items():
            study.set_user_attr(k, v)
        (results_dir / "trials").mkdir(parents=True, exist_ok=True)
        if space.file is not None and not space.overridden:
            shutil.copyfile(space.file, results_dir / "space.yaml")
        else:
            from radio_nas._config import dump_yaml
            (results_dir / "space.yaml").write_text(
                f"# {space.file or 'space'} with command-line overrides applied\n" + dump_yaml(space.raw))
        (results_dir / HASH_FILE).write_text(space.hash + "\n")
    elif study.user_attrs.get("space_hash") != space.hash:  # defensive: name embeds the hash
        raise ConfigError("the study in this folder was made by a different space", key="name")
    return study


def check_folder(space: Space, results_dir: Path) -> None:
    """Refuse a results folder made by a different space (compares the space hash saved there)."""
    saved = results_dir / HASH_FILE
    if not saved.is_file():
        return
    if saved.read_text().strip() != space.hash:
        raise ConfigError(f"{results_dir} was made by a different space (its space.yaml differs in what it "
                          f"searches); run that space again to resume it, or pick another folder with --results "
                          f"or another name", key="name")


def trained_count(study: Any) -> int:
    """Trials the budget counts: finished and trained (ok, failed, ASHA-pruned); not orphans re-run
    later, nor copies of an identical variant trained before (``duplicate_of``)."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state.is_finished() and t.user_attrs.get("status") in TRAINED_STATUSES
               and not t.user_attrs.get("orphaned") and t.user_attrs.get("duplicate_of") is None)


def recover_orphans(study: Any) -> list[int]:
    """Trials left RUNNING by a driver that died: mark FAIL and queue their parameters again."""
    import optuna

    recovered = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        live = optuna.trial.Trial(study, t._trial_id)
        live.set_user_attr("status", "failed")
        live.set_user_attr("failure_reason", ORPHAN_REASON)
        live.set_user_attr("orphaned", True)  # not counted by the budget: it runs again
        study.tell(live, state=optuna.trial.TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
        recovered.append(t.number)
    return recovered
