"""The ablation summary: per factor and level, mean ± 95% Student-t CI of each metric over seeds.

    from radio_nas.study.ablation import AblationDesign, ablation_rows, ablation_markdown
    design = AblationDesign.from_record(study_record, trials)
    rows = ablation_rows(trials, design, ["fidelity"])
    print(ablation_markdown(rows, ["fidelity"]))

One summary for the sweep's closing lines and for ``radio-nas report``. Only fully trained trials
count (:attr:`TrialRecord.is_candidate`). For a one-factor-at-a-time design (``ofat``) a level's
trials are those with every *other* factor at its base level, so the base level of each factor is
the base point alone; for a ``grid`` a level's trials are all trials at that level (the marginal
mean over the other factors). The interval is ``mean ± t(0.975, n-1) · s / sqrt(n)``; with one
run it is undefined (shown as "(n=1)").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from radio_nas._util import format_cell, markdown_table, mean_ci
from radio_nas.study.record import StudyRecord, TrialRecord

SEED_PARAMS = ("pipeline.seed", "seed")


@dataclasses.dataclass(frozen=True)
class AblationDesign:
    design: str
    """"ofat" or "grid"."""
    factors: Mapping[str, tuple[Any, ...]]
    """Factor -> its levels, as Optuna stores them (choices JSON-encoded)."""
    base: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "factors": {k: list(v) for k, v in self.factors.items()},
            "base": dict(self.base),
        }

    @classmethod
    def from_record(cls, study: StudyRecord, trials: Sequence[TrialRecord]) -> AblationDesign:
        """The design the sweep recorded; for a study that recorded none, every parameter that varies
        among trained trials is a factor and levels are pooled (as a grid)."""
        if study.ablation:
            raw = study.ablation
            return cls(
                str(raw.get("design", "grid")),
                {str(k): tuple(v) for k, v in dict(raw.get("factors") or {}).items()},
                dict(raw.get("base") or {}),
            )
        ok = [t for t in trials if t.is_candidate]
        names = dict.fromkeys(n for t in ok for n in t.params if n not in SEED_PARAMS)
        factors = {}
        for name in names:
            levels = list(dict.fromkeys(t.params.get(name) for t in ok if name in t.params))
            if len(levels) > 1:
                factors[name] = tuple(_sorted(levels))
        return cls("grid", factors, {})


def ablation_rows(
    trials: Sequence[TrialRecord], design: AblationDesign, metrics: Sequence[str], confidence: float = 0.95
) -> list[dict[str, Any]]:
    """One row per factor level: ``factor, level, base, n, n_seeds`` and per metric ``<m>_mean``,
    ``<m>_ci95`` (half-width) and ``<m>_std``."""
    ok = [t for t in trials if t.is_candidate]
    rows = []
    for name, levels in design.factors.items():
        for level in levels:
            picked = [
                t
                for t in ok
                if t.params.get(name) == level
                and not (
                    design.design == "ofat"
                    and any(t.params.get(o) != design.base.get(o) for o in design.factors if o != name)
                )
            ]
            seeds = {t.params.get("pipeline.seed", t.seed) for t in picked}
            row: dict[str, Any] = {
                "factor": name,
                "level": level,
                "base": name in design.base and design.base[name] == level,
                "n": len(picked),
                "n_seeds": len(seeds),
            }
            for metric in metrics:
                values = [v for t in picked if (v := t.metric(metric)) is not None]
                row[f"{metric}_mean"], row[f"{metric}_ci95"], row[f"{metric}_std"] = mean_ci(values, confidence)
            rows.append(row)
    return rows


def ablation_markdown(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """The summary table (the sweep prints it; the report writes it): one line per factor level."""
    shown = []
    for r in rows:
        line: dict[str, Any] = {
            "factor": r["factor"],
            "level": r["level"],
            "base": "*" if r["base"] else "",
            "n": r["n"],
            "seeds": r["n_seeds"],
        }
        for m in metrics:
            line[f"{m} (mean ± 95% CI)"] = _pm(r[f"{m}_mean"], r[f"{m}_ci95"])
        shown.append(line)
    return markdown_table(shown)


def _pm(mean: float, half: float) -> str:
    if mean != mean:  # NaN: no trained trial at this level (yet)
        return ""
    return f"{format_cell(mean)} ± {half:.2g}" if half == half else f"{format_cell(mean)} (n=1)"


def _sorted(levels: list[Any]) -> list[Any]:
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=str)
