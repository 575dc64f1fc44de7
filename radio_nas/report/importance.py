"""Which parameters matter: per objective, Optuna's PED-ANOVA importance over the fully trained trials.

    from radio_nas.study import open_study
    from radio_nas.report.importance import param_importances
    handle = open_study("results/mra")
    imp = param_importances(handle.trials(), handle.objectives, mode=handle.mode)
    imp.per_objective[0].n_trials, [(p.param, p.share) for p in imp.per_objective[0].params]

Why PED-ANOVA (:class:`optuna.importance.PedAnovaImportanceEvaluator`) and not fANOVA: it needs no
extra package (fANOVA needs scikit-learn, which radio-nas does not depend on), it handles the
conditional and edited spaces a resumed sweep has, and it asks the question a researcher asks of a
few dozen trials ("which values do the best trials share?") instead of fitting a random forest to
them, which two dozen noisy points cannot support. Its answer is a share of the divergence between
the values of the best trials (the top quantile) and those of all trials, per parameter.

Only fully trained trials count (:attr:`TrialRecord.is_candidate`): they are copied, with their
distributions, into a throw-away in-memory study per objective, so infeasible stand-in values,
copies of re-proposed variants and set-aside trials never reach the evaluator. With fewer than
:data:`MIN_TRIALS` trials nothing is computed (the report says so). The best group is at least
:data:`MIN_TOP` trials (Optuna's advice for PED-ANOVA), so on a 24-trial sweep it is the top 5.
Noise: importances from a few dozen trials with seed noise are fragile, so each share comes with its
spread over :data:`RESAMPLES` random subsets of 80 % of the trials (10th-90th percentile) and how
often the parameter came first; a share whose spread is wide is an indication, not a measurement.
For ablations the per-level table with confidence intervals *is* the importance: nothing is computed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from radio_nas.study.record import Objective, TrialRecord

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

METHOD = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
MIN_TRIALS = 10
"""Fewer fully trained trials than this: no importances (a top group of 5 must be at most half)."""
MIN_TOP = 5
"""Trials in the best group at least (Optuna's advice for PED-ANOVA); 10 % of the trials above 50."""
RESAMPLES = 20
SUBSET = 0.8
PERMUTATIONS = 99
"""Shuffles of the objective values for the chance level (p resolution 1/100)."""
ABLATION_NOTE = (
    "an ablation's importance is its table: the mean ± 95% CI per level below answers which factor "
    "matters, with the seeds' spread, so no importance is computed"
)


@dataclasses.dataclass(frozen=True)
class ParamImportance:
    param: str
    share: float | None
    """This parameter's share of the summed importance (0-1), None when it cannot be measured."""
    low: float | None = None
    high: float | None = None
    """10th and 90th percentile of the share over random subsets of the trials."""
    first: float | None = None
    """How often (0-1) it had the largest share over those subsets."""
    p_chance: float | None = None
    """Permutation p-value: how often shuffling the objective values among the trials gave this
    parameter at least this (unnormalised) importance. Large: the share could be chance."""
    n_values: int = 0
    """Distinct values seen among the trials."""
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ObjectiveImportance:
    objective: Objective
    n_trials: int
    n_top: int = 0
    """Trials in the best group (ties at the cut included)."""
    params: tuple[ParamImportance, ...] = ()
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Importances:
    method: str
    n_trials: int
    """Fully trained trials the importances rest on."""
    per_objective: tuple[ObjectiveImportance, ...] = ()
    note: str = ""
    """Why nothing was computed (too few trials, an ablation), else empty."""

    @property
    def computed(self) -> bool:
        return any(p.share is not None for o in self.per_objective for p in o.params)

    def rows(self) -> list[dict[str, Any]]:
        """One row per objective and parameter (the CSV)."""
        return [
            {
                "objective": o.objective.metric,
                "direction": o.objective.direction,
                "parameter": p.param,
                "share": p.share,
                "share_p10": p.low,
                "share_p90": p.high,
                "ranked_first": p.first,
                "p_chance": p.p_chance,
                "values_seen": p.n_values,
                "n_trials": o.n_trials,
                "n_top": o.n_top,
                "note": p.note or o.note,
            }
            for o in self.per_objective
            for p in o.params
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_trials": self.n_trials,
            "note": self.note,
            "objectives": [
                {
                    "metric": o.objective.metric,
                    "direction": o.objective.direction,
                    "n_trials": o.n_trials,
                    "n_top": o.n_top,
                    "note": o.note,
                    "params": [dataclasses.asdict(p) for p in o.params],
                }
                for o in self.per_objective
            ],
        }


def param_importances(
    records: Sequence[TrialRecord],
    objectives: Sequence[Objective],
    *,
    mode: str = "search",
    resamples: int = RESAMPLES,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Importances:
    """Importance of each search parameter for each objective over the fully trained `records`."""
    trials = [r for r in records if r.is_candidate and r.values is not None]
    n = len(trials)
    if mode == "ablation":
        return Importances(METHOD, n, note=ABLATION_NOTE)
    if n < MIN_TRIALS:
        return Importances(
            METHOD,
            n,
            note=f"{n} fully trained trial{'s' if n != 1 else ''}: too few to say which parameters matter "
            f"(at least {MIN_TRIALS}, so that the best {MIN_TOP} are at most half of them)",
        )
    dists = merged_distributions(trials)
    seen = {name: len({_key(t.params[name]) for t in trials if name in t.params}) for name in dists}
    fixed = {name for name, d in dists.items() if d.single()}
    changed = {
        name for name, d in dists.items() if not all(_fits(d, t.params[name]) for t in trials if name in t.params)
    }
    measurable = [name for name in dists if name not in fixed | changed and seen[name] > 1]
    unmeasured = tuple(
        ParamImportance(
            name,
            None,
            n_values=seen[name],
            note="changed kind between trials (an edited space)"
            if name in changed
            else _why_not(name in fixed, seen[name], n),
        )
        for name in dists
        if name not in measurable
    )
    out = []
    for index, objective in enumerate(objectives):
        values = np.array([t.values[index] if t.values is not None else np.nan for t in trials], dtype=float)
        rng = np.random.default_rng(seed)  # the same subsets and shuffles for every objective
        note = ""
        if np.ptp(values) == 0:
            note = f"{objective.metric} is the same in every trial: nothing to attribute"
        elif not measurable:
            note = "no parameter took two values"
        if note:
            out.append(ObjectiveImportance(objective, n, 0, _unmeasured(measurable, seen, note) + unmeasured, note))
            continue
        one = _one_objective(trials, values, objective, measurable, dists, seen, rng, resamples, permutations)
        out.append(dataclasses.replace(one, params=one.params + unmeasured))
    return Importances(METHOD, n, tuple(out))


def _one_objective(
    trials: Sequence[TrialRecord],
    values: np.ndarray,
    objective: Objective,
    params: list[str],
    dists: Mapping[str, BaseDistribution],
    seen: Mapping[str, int],
    rng: np.random.Generator,
    resamples: int,
    permutations: int,
) -> ObjectiveImportance:
    n = len(trials)
    raw, n_top = _ped_anova(trials, values, objective.direction, params, dists)
    total = sum(raw.values())
    if total <= 0:
        note = f"no parameter separates the best {n_top} trials from the rest"
        return ObjectiveImportance(objective, n, n_top, _unmeasured(params, seen, note), note)
    # spread: the share on random 80 % subsets of the trials
    m = min(n - 1, max(MIN_TRIALS - 1, math.ceil(SUBSET * n)))
    shares = np.zeros((resamples, len(params)))
    for r in range(resamples):
        pick = np.sort(rng.choice(n, size=m, replace=False))
        sub = _ped_anova([trials[i] for i in pick], values[pick], objective.direction, params, dists)[0]
        shares[r] = _shares(sub, params)
    firsts = np.bincount(shares.argmax(axis=1), minlength=len(params)) if resamples else np.zeros(len(params))
    # chance: the same evaluation with the objective values shuffled among the trials
    beaten = np.zeros(len(params))
    for _ in range(permutations):
        null = _ped_anova(trials, rng.permutation(values), objective.direction, params, dists)[0]
        beaten += [null[p] >= raw[p] for p in params]
    found = [
        ParamImportance(
            name,
            raw[name] / total,
            float(np.percentile(shares[:, j], 10)) if resamples else None,
            float(np.percentile(shares[:, j], 90)) if resamples else None,
            float(firsts[j] / resamples) if resamples else None,
            float((1 + beaten[j]) / (1 + permutations)) if permutations else None,
            seen[name],
        )
        for j, name in enumerate(params)
    ]
    found.sort(key=lambda p: -(p.share or 0.0))
    return ObjectiveImportance(objective, n, n_top, tuple(found))


def merged_distributions(records: Sequence[TrialRecord]) -> dict[str, BaseDistribution]:
    """One distribution per parameter over `records` (an edited space may have changed one between
    trials): the union of the choices in order of appearance, the widest range; first-seen order."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    merged: dict[str, BaseDistribution] = {}
    for record in records:
        for name, dist in record.distributions.items():
            old = merged.get(name)
            if old is None or old == dist:
                merged[name] = dist
            elif isinstance(old, CategoricalDistribution) and isinstance(dist, CategoricalDistribution):
                merged[name] = CategoricalDistribution(list(dict.fromkeys([*old.choices, *dist.choices])))
            elif isinstance(old, FloatDistribution) and isinstance(dist, FloatDistribution):
                step = old.step if old.step == dist.step else None
                low, high = min(old.low, dist.low), max(old.high, dist.high)
                if step is not None:  # keep the grid when one range extends the other along it
                    step = step if float((high - low) / step).is_integer() else None
                merged[name] = FloatDistribution(low, high, log=old.log and dist.log, step=step)
            elif isinstance(old, IntDistribution) and isinstance(dist, IntDistribution):
                step = old.step if old.step == dist.step and (old.low - dist.low) % old.step == 0 else 1
                merged[name] = IntDistribution(
                    min(old.low, dist.low), max(old.high, dist.high), log=old.log and dist.log and step == 1, step=step
                )
            else:  # a parameter that changed kind: the newest trial's distribution
                merged[name] = dist
    return merged


def _ped_anova(
    trials: Sequence[TrialRecord],
    values: np.ndarray,
    direction: str,
    params: list[str],
    dists: Mapping[str, BaseDistribution],
) -> tuple[dict[str, float], int]:
    """Unnormalised PED-ANOVA importances of `params` for one objective, and the best group's size."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    way = optuna.study.StudyDirection.MINIMIZE if direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
    study = optuna.create_study(direction=way, sampler=optuna.samplers.RandomSampler(0))  # in memory
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={p: t.params[p] for p in params if p in t.params},
                distributions={p: dists[p] for p in params if p in t.params},
                value=float(v),
            )
            for t, v in zip(trials, values)
        ]
    )
    n = len(trials)
    n_top = min(n // 2, max(MIN_TOP, math.ceil(0.1 * n)))
    # Optuna keeps the ceil(q * n) best (and ties at the cut): (n_top - 0.5) / n gives n_top without float error
    evaluator = PedAnovaImportanceEvaluator(target_quantile=(n_top - 0.5) / n)
    with warnings.catch_warnings():
        # normalize=False is marked experimental; ties and small regimes are the caller's to report
        warnings.simplefilter("ignore")
        raw = get_param_importances(study, evaluator=evaluator, params=params, normalize=False)
    loss = values if direction == "minimize" else -values
    kept = int((loss <= np.sort(loss)[n_top - 1]).sum())
    return {k: float(v) for k, v in raw.items()}, kept


def _shares(raw: Mapping[str, float], params: Sequence[str]) -> list[float]:
    total = sum(raw.values())
    return [raw.get(p, 0.0) / total if total > 0 else 0.0 for p in params]


def _unmeasured(names: Sequence[str], seen: Mapping[str, int], note: str) -> tuple[ParamImportance, ...]:
    return tuple(ParamImportance(name, None, n_values=seen[name], note=note) for name in names)


def _fits(dist: BaseDistribution, value: Any) -> bool:
    """Whether `value` is a point of `dist` (choices by value; ranges by bounds, grids not checked)."""
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return value in choices
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    low, high = getattr(dist, "low", None), getattr(dist, "high", None)
    return low is not None and high is not None and low <= value <= high


def _why_not(fixed: bool, n_values: int, n: int) -> str:
    if fixed:
        return "fixed in the space (one value)"
    return f"one value seen in the {n} trials" if n_values == 1 else "not in these trials"


def _key(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)
