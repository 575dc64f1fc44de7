"""A sweep's study as a pandas table, one row per trial (read through :mod:`radio_nas.study`).

    from radio_nas.study import open_study
    from radio_nas.report.study_table import trials_table
    handle = open_study("results/mra")                     # or ("sqlite:///x.db", "mra")
    table = trials_table(handle.study)                     # pareto_rank, objectives, params, ...

Only fully trained trials (:attr:`radio_nas.study.TrialRecord.is_candidate`) are Pareto candidates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radio_nas.study.pareto import pareto_ranks
from radio_nas.study.record import Objective, TrialRecord, read_trials, study_objectives

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["trials_table"]


def trials_table(study: Study) -> pd.DataFrame:
    """One row per trial: identity, state, objectives, measured cost, params, metrics, Pareto rank.

    Columns: ``number, state, status, failure_reason, arch_id, <objective metrics...>, n_params,
    gmacs, latency_ms, latency_device, seed, duration_s, weights_path, candidate, pareto_rank,
    pareto`` then ``param.<name>`` per search parameter and ``metric.<name>`` per recorded metric.
    ``pareto_rank`` is the non-dominated-sorting rank among candidates (1 = front); it is empty for
    trials that are not fully trained (failed, pruned, infeasible, running).
    """
    objectives = study_objectives(study)
    rows = [_row(r, objectives) for r in read_trials(study)]
    front_cols = [
        "number",
        "state",
        "status",
        "failure_reason",
        "arch_id",
        *[o.metric for o in objectives],
        "n_params",
        "gmacs",
        "latency_ms",
        "latency_device",
        "seed",
        "duration_s",
        "weights_path",
        "candidate",
    ]
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


def _row(r: TrialRecord, objectives: list[Objective]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": r.number,
        "state": r.state,
        "status": str(r.status),
        "failure_reason": r.reason,
        "arch_id": r.arch_id,
    }
    for i, obj in enumerate(objectives):
        # infeasible trials are told COMPLETE with stand-in values for the samplers: not shown
        row[obj.metric] = r.values[i] if r.values is not None and r.status.value == "ok" else np.nan
    for column, value in (
        ("n_params", r.n_params),
        ("gmacs", r.gmacs),
        ("latency_ms", r.latency_ms),
        ("latency_device", r.latency_device),
        ("seed", r.seed),
    ):
        if column not in row or _missing(row[column]):
            row[column] = value
    row["duration_s"] = r.duration_s if r.duration_s is not None else np.nan
    row["weights_path"] = r.weights_path
    row["candidate"] = r.is_candidate
    for name, value in r.params.items():
        row[f"param.{name}"] = value
    for name, value in r.metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[f"metric.{name}"] = value
    return row


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
