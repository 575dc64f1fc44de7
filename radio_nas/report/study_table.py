"""Open a sweep's Optuna study and load it into a pandas table, one row per trial.

    >>> from radio_nas.report.study_table import open_study, trials_table
    >>> handle = open_study("results/mra")                     # or ("sqlite:///x.db", "mra")
    >>> table = trials_table(handle.study)                     # pareto_rank, objectives, params, ...
    >>> handle.objectives                                      # [Objective("fidelity", "maximize"), ...]

Study conventions (written by ``radio_nas.search``): ``results/<name>/study.db`` (SQLite), study
user attrs ``objectives``, ``mode``, ``space_name``, ``pipeline``; trial user attrs ``arch``,
``arch_id``, ``params``, ``gmacs``, ``latency_ms``, ``status``, ``failure_reason``, ``metrics``,
``weights_path``, ``seed``. Only COMPLETE trials whose status is "ok" (and whose objective values
are finite) are Pareto candidates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from radio_nas._config import ConfigError
from radio_nas.report.pareto import pareto_ranks

STUDY_FILE = "study.db"


class Objective(NamedTuple):
    metric: str
    direction: str  # "maximize" | "minimize"


@dataclass
class StudyHandle:
    """An opened study with where it came from."""

    study: Any  # optuna.Study
    storage_url: str
    storage: Any  # optuna storage object (artifact uploads need it)
    results_dir: Path | None
    """The sweep folder (reports and exports go there), or None for a bare storage URL."""

    @property
    def objectives(self) -> list[Objective]:
        return study_objectives(self.study)

    @property
    def mode(self) -> str:
        return str(self.study.user_attrs.get("mode", "search"))

    @property
    def name(self) -> str:
        return str(self.study.study_name)


def open_study(source: str | Path, study_name: str | None = None) -> StudyHandle:
    """Open a study from a results folder, a ``.db`` file or an Optuna storage URL.

    With no `study_name`, the storage must hold exactly one study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    text = str(source)
    results_dir: Path | None = None
    if "://" in text:
        url = text
        if url.startswith("sqlite:///"):
            db = Path(url[len("sqlite:///"):])
            if not db.is_file():  # RDBStorage would silently create an empty database
                raise ConfigError("no such SQLite file", file=db)
            results_dir = db.parent if db.name == STUDY_FILE else None
    else:
        path = Path(text)
        if path.is_dir():
            db = path / STUDY_FILE
            if not db.is_file():
                raise ConfigError(f"no {STUDY_FILE} here; expected a sweep results folder "
                                  f"(results/<name>) or a storage URL", file=path)
            results_dir = path
        elif path.is_file():
            db = path
            results_dir = path.parent
        else:
            raise ConfigError("no such results folder or file", file=path)
        url = f"sqlite:///{db}"
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001  (bad URL, not a database, ...)
        raise ConfigError(f"cannot open storage: {exc}".splitlines()[0], file=text) from None
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise ConfigError(f"holds {len(names)} studies ({listed}); pick one with --study",
                              file=text)
        study_name = names[0]
    elif study_name not in names:
        raise ConfigError(f"no study {study_name!r}; studies here: {', '.join(names) or 'none'}",
                          file=text, key="--study")
    study = optuna.load_study(study_name=study_name, storage=storage)
    if results_dir is None and study.user_attrs.get("results_dir"):
        candidate = Path(study.user_attrs["results_dir"])
        results_dir = candidate if candidate.is_dir() else None
    return StudyHandle(study, url, storage, results_dir)


def study_objectives(study: Any) -> list[Objective]:
    """The study's objectives in value order: its ``objectives`` attr, else metric names."""
    directions = [d.name.lower() for d in study.directions]
    declared = study.user_attrs.get("objectives")
    if isinstance(declared, list) and len(declared) == len(directions):
        return [Objective(str(o.get("metric", f"objective_{i}")), directions[i])
                for i, o in enumerate(declared)]
    names = study.metric_names or [f"objective_{i}" for i in range(len(directions))]
    return [Objective(str(n), d) for n, d in zip(names, directions)]


def is_candidate(trial: Any) -> bool:
    """A fully trained trial: COMPLETE, status "ok", finite objective values, and not a copy.

    A sweep records a re-proposed, already-trained variant as COMPLETE with ``duplicate_of`` (so the
    sampler learns its value) without training it again; it is the same point as its original.
    """
    import optuna

    if trial.state != optuna.trial.TrialState.COMPLETE or trial.values is None:
        return False
    if trial.user_attrs.get("duplicate_of") is not None:
        return False
    if str(trial.user_attrs.get("status", "ok")) != "ok":
        return False
    return all(v is not None and math.isfinite(v) for v in trial.values)


def trials_table(study: Any) -> pd.DataFrame:
    """One row per trial: identity, state, objectives, measured cost, params, metrics, Pareto rank.

    Columns: ``number, state, status, failure_reason, arch_id, <objective metrics...>, n_params,
    gmacs, latency_ms, latency_device, seed, duration_s, weights_path, candidate, pareto_rank,
    pareto`` then ``param.<name>`` per search parameter and ``metric.<name>`` per recorded metric.
    ``pareto_rank`` is the non-dominated-sorting rank among candidates (1 = front); it is empty for
    trials that are not fully trained (failed, pruned, infeasible, running).
    """
    objectives = study_objectives(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        status = ua.get("status") or _default_status(t)
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "status": status,
            "failure_reason": ua.get("failure_reason") or _system_failure(t),
            "arch_id": ua.get("arch_id"),
        }
        for i, obj in enumerate(objectives):
            row[obj.metric] = t.values[i] if t.values is not None else np.nan
        for key, column in (("params", "n_params"), ("gmacs", "gmacs"), ("latency_ms", "latency_ms"),
                            ("latency_device", "latency_device"), ("seed", "seed")):
            if column not in row or _missing(row[column]):
                row[column] = ua.get(key)
        if row.get("seed") is None and "seed" in t.params:
            row["seed"] = t.params["seed"]
        duration = t.duration
        row["duration_s"] = duration.total_seconds() if duration is not None else np.nan
        row["weights_path"] = ua.get("weights_path")
        row["candidate"] = is_candidate(t)
        for name, value in t.params.items():
            row[f"param.{name}"] = value
        metrics = ua.get("metrics") or {}
        if isinstance(metrics, dict):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"metric.{name}"] = value
        rows.append(row)
    front_cols = ["number", "state", "status", "failure_reason", "arch_id",
                  *[o.metric for o in objectives], "n_params", "gmacs", "latency_ms",
                  "latency_device", "seed", "duration_s", "weights_path", "candidate"]
    front_cols = list(dict.fromkeys(front_cols))  # an objective may be gmacs or latency_ms itself
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=front_cols)
    table["pareto_rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    mask = table["candidate"].astype(bool).to_numpy()
    if mask.any():
        values = table.loc[mask, [o.metric for o in objectives]].to_numpy(dtype=float)
        table.loc[mask, "pareto_rank"] = pareto_ranks(values, [o.direction for o in objectives])
    table["pareto"] = (table["pareto_rank"] == 1).fillna(False).astype(bool)
    rest = sorted(c for c in table.columns if c not in front_cols and c not in ("pareto_rank", "pareto"))
    return table[[*front_cols, "pareto_rank", "pareto", *rest]].sort_values("number").reset_index(drop=True)


def _default_status(trial: Any) -> str:
    return {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
            "WAITING": "waiting"}.get(trial.state.name, trial.state.name.lower())


def _system_failure(trial: Any) -> str | None:
    reason = trial.system_attrs.get("fail_reason")
    return str(reason).splitlines()[0] if reason else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
