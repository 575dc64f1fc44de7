"""The printed end-of-sweep summary: the Pareto set (or best trial), counts and where results are.

From a sweep's study:

    print(format_summary(study, space, results_dir, storage_url))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas._util import markdown_table
from radio_nas.search.space import Space
from radio_nas.study.ablation import AblationDesign, ablation_markdown, ablation_rows
from radio_nas.study.record import Status, StudyRecord, TrialRecord, read_trials

if TYPE_CHECKING:
    from optuna.study import Study


def pareto_rows(study: Study, space: Space) -> list[dict[str, Any]]:
    """Optuna's best trials (feasible COMPLETE ones: never a pruned or infeasible one), sorted by
    objective 1; copies of an identical variant are listed once (the trial that trained it)."""
    best = [TrialRecord.from_trial(t) for t in study.best_trials]
    best = [r for r in best if r.is_candidate and r.values is not None]
    sign = -1 if space.objective_directions[0] == "maximize" else 1
    rows = []
    for r in sorted(best, key=lambda r: sign * r.values[0] if r.values else 0.0):
        row: dict[str, Any] = {"trial": r.number}
        row.update(dict(zip(space.objective_names, r.values or ())))
        row["params_M"] = (r.n_params or 0) / 1e6
        row["arch_id"] = r.arch_id
        row.update(dict(r.params))
        rows.append(row)
    return rows


def state_counts(records: list[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.duplicate_of is not None:
            status = "copies of trained variants"
        elif r.imported_from is not None and r.status is Status.OK:
            status = "imported"  # trained by another sweep (warm start): not counted by the budget
        else:
            status = str(r.status)  # set_aside: not a point of the edited space (kept, never on a front)
        counts[status] = counts.get(status, 0) + 1
    return counts


def ablation_summary(study: Study, metrics: list[str]) -> list[dict[str, Any]]:
    """The ablation rows (see :mod:`radio_nas.study.ablation`) from the design the study recorded."""
    records = read_trials(study)
    design = AblationDesign.from_record(StudyRecord.from_study(study), records)
    return ablation_rows(records, design, metrics)


def format_summary(
    study: Study, space: Space, results_dir: Path, storage_url: str, ablation: list[dict[str, Any]] | None = None
) -> str:
    records = read_trials(study)
    counts = state_counts(records)
    parts = [f"Sweep {space.name!r}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    if ablation is not None:
        parts += ["Ablation (mean ± 95% CI, t-distribution):", ablation_markdown(ablation, space.objective_names)]
    title = "Pareto set" if len(space.objective_names) > 1 else "Best trial"
    objectives = ", ".join(f"{o.metric} {o.direction[:3]}" for o in space.config.objectives)
    parts += [f"{title} ({objectives}):", markdown_table(pareto_rows(study, space))]
    parts += [
        f"Results: {results_dir}  (study {study.study_name!r} in {storage_url})",
        f"Review: optuna-dashboard {storage_url}    Report: radio-nas report {results_dir}",
    ]
    return "\n".join(parts)
