"""The Optuna study behind a sweep: creation, the results-folder conventions, drivers and resume.

The study is the source of truth; it belongs to one results folder (``results/<name>/``, see
:mod:`radio_nas.study.layout`) and is driven by one live driver at a time.

    study = open_study(space, results_dir, storage_url)      # create, or reopen and check the space
    driver = Driver.start(study)                            # refuses a second live driver
    recovered = recover_orphans(study, driver)              # RUNNING of dead drivers -> FAIL + re-enqueued
    trained_count(study)                                    # what the budget counts
    driver.stop()

Drivers: each sweep process registers an id with a heartbeat (study system attribute
``driver:<id>``, refreshed every :data:`HEARTBEAT_S` seconds by a thread) and stamps every trial it
asks with that id. A driver is alive while its heartbeat is fresh (and, on the same host, while its
process exists). A second driver on a study with a live one is refused, and orphan recovery only
ever fails RUNNING trials of drivers that are not alive, so sweeps sharing one storage never touch
each other's trials.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas import __version__
from radio_nas._config import ConfigError
from radio_nas._util import atomic_write
from radio_nas.search.space import Space
from radio_nas.study.layout import HASH_FILE, SPACE_COPY, TRIALS_DIR, default_storage
from radio_nas.study.record import Status, read_trials, write_study, write_trial

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "Driver",
    "check_folder",
    "default_storage",
    "make_sampler",
    "make_storage",
    "open_study",
    "recover_orphans",
    "study_name",
    "trained_count",
]

ORPHAN_REASON = "the sweep driver stopped while this trial ran; its parameters were queued again"
CRASH_REASON = "the sweep driver died twice while measuring this variant's costs; not queued again"
HEARTBEAT_S = 5.0
STALE_S = 60.0
"""A driver whose heartbeat is older than this is taken for dead (another host cannot check its pid)."""
_DRIVER_PREFIX = "driver:"


def study_name(space: Space) -> str:
    """Unique per space content, so two spaces never share a study in one storage."""
    return f"{space.name}-{space.hash[:8]}"


def make_storage(url: str) -> BaseStorage:
    """An Optuna storage object (creating tables: the sweep is the writer)."""
    import optuna

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # bad URL, driver missing, server down
        raise ConfigError(f"cannot open Optuna storage {url!r}: {str(exc).splitlines()[0]}", key="storage") from None


def make_sampler(space: Space) -> BaseSampler:
    """The space's sampler. Constraints need no ``constraints_func``: Optuna 5 samplers read the
    values the searcher records with ``Trial.set_constraint`` (see :mod:`radio_nas.search.searcher`)."""
    import optuna

    s = space.config.sampler
    if space.config.mode == "ablation":
        return optuna.samplers.RandomSampler(seed=s.seed)  # every ablation trial is enqueued
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.name == "tpe":
            kw: dict[str, Any] = {"n_startup_trials": s.n_startup_trials} if s.n_startup_trials is not None else {}
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
    if grid is None:
        raise ConfigError("the grid sampler needs a finite space", key="sampler.name")
    return _ask_tell_grid_sampler(grid, s.seed)


def _ask_tell_grid_sampler(grid: dict[str, list[Any]], seed: int | None) -> BaseSampler:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler calls ``study.stop()`` after the last point, which raises outside
        ``study.optimize()`` (ask-and-tell): the last tell of a grid sweep crashed the Tune loop. The
        searcher stops at the grid's end itself (:func:`radio_nas.search.decisions.exhausted`)."""

        def after_trial(
            self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
        ) -> None:
            return None

    return AskTellGridSampler(grid, seed=seed)


def open_study(space: Space, results_dir: Path, storage_url: str, say: Callable[[str], None] | None = None) -> Study:
    """Create the study (and folder) or reopen the folder's current one. An edited space (the
    folder's ``.space_hash`` differs) gets the next revision: a new study carrying the previous
    one's trials (:func:`radio_nas.search.carry.carry_trials`); what changed and what was kept is
    told to `say`. Refused: an edit that makes old results meaningless (:func:`check_folder`), and
    a study of this space that belongs to another results folder (shared storage)."""
    import optuna

    from radio_nas.study.storage import current_study_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results_dir = Path(results_dir)
    changes = check_folder(space, results_dir, storage_url)
    storage = make_storage(storage_url)
    summaries = optuna.get_all_study_summaries(storage)
    existing = {s.study_name: s for s in summaries}
    here = str(results_dir.resolve())
    current = current_study_name(summaries, results_dir) if (results_dir / HASH_FILE).is_file() else None
    if current is not None and existing[current].user_attrs.get("space_hash") == space.hash:
        return optuna.load_study(study_name=current, storage=storage, sampler=make_sampler(space))
    if current is not None:
        return _next_revision(space, results_dir, storage, current, changes or [], say)
    name = study_name(space)
    mine = [s for s in existing.values() if s.user_attrs.get("results_dir") == here and s.study_name != name]
    if mine:
        raise ConfigError(
            f"storage {storage_url} already holds study {mine[0].study_name!r} for {results_dir} from a different "
            f"space (hash {mine[0].user_attrs.get('space_hash')}); use another results folder (--results), the "
            "original space file, or --fresh",
            key="name",
        )
    if name in existing and existing[name].user_attrs.get("results_dir") not in (None, here):
        raise ConfigError(
            f"storage {storage_url} holds study {name!r} of this space for another results folder "
            f"({existing[name].user_attrs.get('results_dir')}); a study belongs to one folder: resume it with "
            "--results pointing there, or give this sweep its own storage",
            key="--results",
        )
    created = name not in existing
    study = _create(space, storage, name)
    if created:
        _record_new(study, space, results_dir, revision=1, previous=None)
    return study


def _create(space: Space, storage: BaseStorage, name: str) -> Study:
    import optuna

    return optuna.create_study(
        storage=storage,
        study_name=name,
        directions=[optuna.study.StudyDirection[d.upper()] for d in space.objective_directions],
        sampler=make_sampler(space),
        load_if_exists=True,
    )


def _record_new(study: Study, space: Space, results_dir: Path, *, revision: int, previous: str | None) -> None:
    """The study-level record of a new study (the folder's files follow in :func:`_write_folder`)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(space.objective_names)
    write_study(
        study,
        radio_nas_version=__version__,
        space_name=space.name,
        space_file=str(space.file) if space.file else None,
        space_hash=space.hash,
        mode=space.config.mode,
        objectives=[{"metric": o.metric, "direction": o.direction} for o in space.config.objectives],
        pipeline=space.pipeline.to_dict(),
        latency=space.config.latency.to_dict(),
        results_dir=str(results_dir.resolve()),
        parameters=[p.name for p in space.params if not p.fixed],
        revision=revision,
        previous_study=previous,
    )
    if previous is None:
        _write_folder(space, results_dir)


def _write_folder(space: Space, results_dir: Path) -> None:
    """The space copy and, last, the hash that makes this space the folder's current one."""
    (results_dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
    if space.file is not None and not space.overridden:
        shutil.copyfile(space.file, results_dir / SPACE_COPY)
    else:
        from radio_nas._config import dump_yaml

        atomic_write(
            results_dir / SPACE_COPY,
            f"# {space.file or 'space'} with command-line overrides applied\n" + dump_yaml(space.raw),
        )
    atomic_write(results_dir / HASH_FILE, space.hash + "\n")


def _next_revision(
    space: Space,
    results_dir: Path,
    storage: BaseStorage,
    current: str,
    changes: list[str],
    say: Callable[[str], None] | None,
) -> Study:
    """Resume with an edited space: a new study carrying the current one's trials (see
    :mod:`radio_nas.search.carry`); the folder switches to it only once every trial is copied."""
    import optuna

    from radio_nas.search.carry import carry_trials
    from radio_nas.study.record import StudyRecord

    old = optuna.load_study(study_name=current, storage=storage)
    revision = StudyRecord.from_study(old).revision + 1
    here = str(results_dir.resolve())
    for s in optuna.get_all_study_summaries(storage):  # a revision an interrupted resume left half-copied
        if s.user_attrs.get("results_dir") == here and int(s.user_attrs.get("revision") or 1) >= revision:
            optuna.delete_study(study_name=s.study_name, storage=storage)
    taken = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    name = study_name(space)
    if name in taken:  # back to an earlier space: that revision's study keeps its name
        name = f"{name}-r{revision}"
    study = _create(space, storage, name)
    _record_new(study, space, results_dir, revision=revision, previous=current)
    report = carry_trials(old, study, space)
    _write_folder(space, results_dir)
    if say is not None:
        say(f"[{space.name}] the space changed since {current!r} (revision {revision - 1} -> {revision}):")
        for line in changes or ["(no listed change: the space file's text differs)"]:
            say(f"  {line}")
        for line in report.lines():
            say(f"[{space.name}] {line}")
    return study


def check_folder(space: Space, results_dir: Path, storage_url: str | None = None) -> list[str] | None:
    """None when the folder is new or made by this space; else the list of what changed since (an
    edited space, resumed as the next revision). ConfigError (naming the key) for changes that make
    the folder's results meaningless: another pipeline, other objectives, another mode, other
    latency settings where latency counts. Opens the storage read-only; writes nothing."""
    saved = results_dir / HASH_FILE
    if not saved.is_file() or saved.read_text().strip() == space.hash:
        return None
    from radio_nas._config import load_yaml
    from radio_nas.search.space import parse_space
    from radio_nas.search.space_diff import check_carryable, space_changes
    from radio_nas.study.record import StudyRecord
    from radio_nas.study.storage import current_study_name, open_readonly

    try:
        import optuna

        storage = open_readonly(storage_url or default_storage(results_dir))
        current = current_study_name(optuna.get_all_study_summaries(storage), results_dir)
        if current is None:
            raise ConfigError("no study of this folder")
        record = StudyRecord.from_study(optuna.load_study(study_name=current, storage=storage))
    except ConfigError:
        raise ConfigError(
            f"{results_dir} was made by a different space and its study cannot be read to carry its trials over; "
            "run the original space to resume it, use --fresh, or pick another folder with --results",
            key="name",
        ) from None
    try:
        old_cfg, old_params = parse_space(load_yaml(results_dir / SPACE_COPY))
    except (ConfigError, OSError):
        old_cfg, old_params = None, []
    check_carryable(record, old_cfg, space)
    return space_changes(old_cfg, old_params, space) if old_cfg is not None else []


def trained_count(study: Study) -> int:
    """Trials the budget counts: finished and trained (ok, failed, pruned); not orphans re-run
    later, nor copies of an identical variant trained before (``duplicate_of``)."""
    return sum(1 for r in read_trials(study) if r.trained)


# -- drivers ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Driver:
    """This process as the one live driver of a study (see the module docstring)."""

    study: Study
    id: str
    started: float
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def start(cls, study: Study) -> Driver:
        """Register and start the heartbeat; ConfigError when another live driver holds the study.
        Of two drivers that start at once, the one registered first keeps the study."""
        driver = cls(study, uuid.uuid4().hex[:12], time.time())
        driver._beat()
        rivals = [d for d in live_drivers(study) if d["id"] != driver.id]
        first = [d for d in rivals if (d["started"], d["id"]) < (driver.started, driver.id)]
        if first:
            driver._beat(stopped=True)
            d = first[0]
            raise ConfigError(
                f"study {study.study_name!r} is being run by another live sweep driver (host {d['host']}, pid "
                f"{d['pid']}, heartbeat {time.time() - d['heartbeat']:.0f}s ago); wait for it to finish or stop "
                "it, then run this command again to resume",
                key="--storage",
            )
        driver._thread = threading.Thread(target=driver._loop, name="radio-nas-heartbeat", daemon=True)
        driver._thread.start()
        return driver

    def _beat(self, stopped: bool = False) -> None:
        info: dict[str, Any] = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "heartbeat": time.time(),
            "stopped": stopped,
        }
        self.study._storage.set_study_system_attr(self.study._study_id, _DRIVER_PREFIX + self.id, info)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._beat()
            except Exception:  # a storage hiccup: the next beat tries again
                pass

    def stop(self) -> None:
        """Stop the heartbeat and mark this driver stopped (its RUNNING trials become orphans)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_S + 1)
        self._beat(stopped=True)


def live_drivers(study: Study) -> list[dict[str, Any]]:
    """Registered drivers that are alive now (fresh heartbeat, process present when on this host)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return [d for k, d in attrs.items() if k.startswith(_DRIVER_PREFIX) and isinstance(d, dict) and _alive(d)]


def _alive(d: dict[str, Any]) -> bool:
    if d.get("stopped") or time.time() - float(d.get("heartbeat", 0)) > STALE_S:
        return False
    if d.get("host") == socket.gethostname():
        try:
            os.kill(int(d["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError, TypeError):
            pass
    return True


def recover_orphans(study: Study, driver: Driver | None = None) -> list[int]:
    """Trials left RUNNING by drivers that are not alive (and by `driver` itself, whose Tune run is
    over): mark FAIL and queue their parameters again. Live drivers' trials are left alone."""
    import optuna

    live = {d["id"] for d in live_drivers(study)} - ({driver.id} if driver is not None else set())
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("driver") in live:
            continue
        trial = optuna.trial.Trial(study, t._trial_id)
        if t.user_attrs.get("phase") == "measuring" and t.user_attrs.get("requeued_from") is not None:
            # the driver died measuring this variant twice (an absurd size crashes it): queueing it
            # again would crash every resume the same way
            write_trial(trial, status=Status.FAILED, reason=CRASH_REASON)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:  # orphaned: not counted by the budget, it runs again
            write_trial(trial, status=Status.FAILED, reason=ORPHAN_REASON, orphaned=True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if t.params:
                study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
        recovered.append(t.number)
    return recovered
