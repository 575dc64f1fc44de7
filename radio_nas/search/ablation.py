"""Ablation mode: a grid or one-factor-at-a-time (OFAT) design around a base, k seeds per point.

    points = ablation_points(space)           # encoded Optuna params, one dict per trial
    ablation_design(space).to_dict()          # recorded in the study; the summary reads it

Every point runs ``ablation.seeds`` times with pipeline seeds ``seed, seed+1, ...`` (the seed of
the pipeline), as the implicit parameter ``pipeline.seed``. The points are enqueued in the study
when it is created, so a resumed ablation simply continues the queue. The summary (mean ± 95% CI
per factor level) is :mod:`radio_nas.study.ablation`, shared with ``radio-nas report``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from radio_nas.search.space import Space, encode_choice
from radio_nas.study.ablation import AblationDesign
from radio_nas.study.record import write_study

if TYPE_CHECKING:
    from optuna.study import Study

SEED_PARAM = "pipeline.seed"


def factors(space: Space) -> dict[str, tuple[Any, ...]]:
    """Varying parameters (the implicit seed excluded) and their levels."""
    return {p.name: p.finite_values or () for p in space.sampled if p.name != SEED_PARAM}


def base_levels(space: Space) -> dict[str, Any]:
    return {name: space.config.ablation.base.get(name, levels[0]) for name, levels in factors(space).items()}


def ablation_design(space: Space) -> AblationDesign:
    """The design with levels encoded as Optuna stores them (what the study records)."""
    return AblationDesign(
        space.config.ablation.design,
        {name: tuple(encode_choice(v) for v in levels) for name, levels in factors(space).items()},
        {name: encode_choice(v) for name, v in base_levels(space).items()},
    )


def ablation_points(space: Space) -> list[dict[str, Any]]:
    """The trials of the design, seeds innermost, as Optuna params (choices encoded)."""
    levels = factors(space)
    base = base_levels(space)
    if space.config.ablation.design == "grid":
        points = [dict(zip(levels, combo)) for combo in itertools.product(*levels.values())]
    else:
        points = [dict(base)]
        for name, values in levels.items():
            points += [{**base, name: v} for v in values if v != base[name]]
    seeds = seed_values(space)
    return [{**{k: encode_choice(v) for k, v in pt.items()}, SEED_PARAM: s} for pt in points for s in seeds]


def seed_values(space: Space) -> list[int]:
    return [space.pipeline.seed + i for i in range(space.config.ablation.seeds)]


def queue_ablation(study: Study, space: Space) -> None:
    """Record the design in a new study and queue every point of it (a resumed one keeps its queue)."""
    if study.get_trials(deepcopy=False):
        return
    write_study(study, ablation=ablation_design(space).to_dict())
    for params in ablation_points(space):
        study.enqueue_trial(params)
