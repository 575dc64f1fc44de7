"""The printed end-of-sweep summary: the Pareto set (or best trial), counts and where results are.

    >>> print(format_summary(study, space, results_dir))
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from radio_nas.search.space import Space


def pareto_rows(study: Any, space: Space) -> list[dict[str, Any]]:
    """Optuna's best trials (COMPLETE only, so never a pruned/infeasible one), sorted by objective 1;
    copies of an identical variant are listed once (the trial that trained it)."""
    best = [t for t in study.best_trials if t.user_attrs.get("duplicate_of") is None]
    sign = -1 if space.objective_directions[0] == "maximize" else 1
    best = sorted(best, key=lambda t: sign * t.values[0])
    rows = []
    for t in best:
        row: dict[str, Any] = {"trial": t.number}
        row.update(dict(zip(space.objective_names, t.values)))
        row["params_M"] = (t.user_attrs.get("params") or 0) / 1e6
        row["arch_id"] = t.user_attrs.get("arch_id")
        row.update({k: v for k, v in t.params.items()})
        rows.append(row)
    return rows


def state_counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status") or t.state.name.lower()
        if t.user_attrs.get("duplicate_of") is not None:
            status = "copies of trained variants"
        counts[status] = counts.get(status, 0) + 1
    return counts


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain Markdown table (numbers to 4 significant digits)."""
    if not rows:
        return "(none)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def format_summary(study: Any, space: Space, results_dir: Path, storage_url: str,
                   ablation_rows: list[dict[str, Any]] | None = None) -> str:
    counts = state_counts(study)
    parts = [f"Sweep {space.name!r}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))]
    if ablation_rows is not None:
        rows = [{"factor": r["factor"], "level": r["level"], "base": "*" if r["base"] else "", "n": r["n"],
                 "fidelity mean": r["mean"], "± 95% CI": r["ci95"]} for r in ablation_rows]
        parts += ["Ablation (fidelity, mean ± 95% CI, t-distribution):", format_table(rows)]
    title = "Pareto set" if len(space.objective_names) > 1 else "Best trial"
    parts += [f"{title} ({', '.join(f'{o.metric} {o.direction[:3]}' for o in space.config.objectives)}):",
              format_table(pareto_rows(study, space))]
    parts += [f"Results: {results_dir}  (study {study.study_name!r} in {storage_url})",
              f"Review: optuna-dashboard {storage_url}    Report: radio-nas report {results_dir}"]
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)
