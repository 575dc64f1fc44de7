"""Carry what earlier sweeps learned into a study: a resume with an edited space, and warm start.

    from radio_nas.search.carry import carry_trials, open_sources, import_trials
    report = carry_trials(old_study, new_study, space)           # edited space: next revision
    sources = open_sources("results/mra-first,sqlite:///x.db#mra-1a2b3c4d", space, here=results)
    report = import_trials(study, space, sources)                 # warm start

**Why copies.** Optuna's samplers read a trial's parameters through its recorded distributions:
GPSampler (and TPE/NSGA-II with ``multivariate``/relative sampling) keep only the parameters whose
distribution is identical in every finished trial (``IntersectionSearchSpace``), so one old trial
recorded with ``choice(16, 24, 32)`` beside new ones recorded with ``choice(16, 24, 32, 48)`` drops
``arch.width`` from the model altogether; TPE's independent sampling maps old values through the new
distribution and raises on a value no longer among the choices. Finished trials cannot be changed in
Optuna's storage, so a kept trial is copied (``Study.add_trials``) with the *new* space's
distributions: the sampler then models it like any trial it proposed itself.

**Edited space** (:func:`carry_trials`): the folder gets a new study (one per space revision), and
every trial of the previous one is copied in order, so trial numbers (and ``trials/<N>/`` files) stay
the same. A trial that is a point of the new space (every active parameter's value within its new
domain, and rebuilding it under the new space gives the same architecture id and pipeline id) keeps
its state and outcome with ``carried_from``; constraints are checked again (a trained variant over a
tightened limit becomes ``infeasible``, metrics kept; a variant infeasible before and within the new
limits is set aside, never trained yet). Every other trial is FAIL with status ``set_aside`` and
the reason: kept, never a candidate, never counted. Queued or running trials of the previous study
are set aside and, when points of the new space, queued again.

**Warm start** (:func:`open_sources`, :func:`import_trials`): the fully trained trials of other
studies (same pipeline, objectives and latency settings, checked per source) that are points of
this space, within its constraints and not trained here already are added as COMPLETE ``ok`` trials
with ``imported_from``: candidates for the fronts, never counted by this sweep's budget, and a
re-proposal of one is a copy (the searcher's copy rule sees a trained variant). Importing again
skips what is in the study already, so a resume never imports twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas._config import ConfigError, load_yaml, stable_id
from radio_nas.search.costs import Costs, constraint_limits, stand_in_values, violations
from radio_nas.search.grammar import Choice, FloatRange, IntRange
from radio_nas.search.space import Param, Space, decode_choice, encode_choice, parse_space, recorded_pipeline_id
from radio_nas.search.space_diff import first_difference, latency_matters
from radio_nas.study.layout import SPACE_COPY
from radio_nas.study.record import (
    Status,
    StudyRecord,
    TrialRecord,
    constraint_values,
    read_trials,
    trial_attrs,
    write_study,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = [
    "CarryReport",
    "ImportReport",
    "Source",
    "carry_trials",
    "distributions_of",
    "import_trials",
    "open_sources",
    "parse_sources",
    "point_of",
]

_CONSTRAINT_PREFIX = "constraints:"  # Optuna's system attribute for Trial.set_constraint
_NOT_COPIED = ("driver",)
"""The driver that ran a trial: meaningless in another study (``orphaned``, ``phase`` and the rest stay:
the budget reads them)."""


# -- points of a space --------------------------------------------------------------------------------


def optuna_distribution(p: Param) -> BaseDistribution:
    """The distribution Optuna records when :meth:`Param.suggest` samples `p`."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    d = p.dist
    if isinstance(d, Choice):
        return CategoricalDistribution([encode_choice(v) for v in d.values])
    if isinstance(d, IntRange):
        return IntDistribution(d.low, d.high, log=d.log, step=d.step)
    assert isinstance(d, FloatRange)
    return FloatDistribution(d.low, d.high, log=d.log, step=d.step)


def distributions_of(space: Space, params: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The new space's distribution of each (sampled) parameter in `params`."""
    by_name = {p.name: p for p in space.sampled}
    return {name: optuna_distribution(by_name[name]) for name in params}


def point_of(space: Space, record: TrialRecord) -> tuple[dict[str, Any] | None, str | None]:
    """The Optuna params of `record` as a point of `space`, or (None, why not).

    A parameter the old study did not search is read from the trial's recorded architecture or
    pipeline. The point must build to the same variant (architecture id, pipeline id) the record
    was trained as: that also catches a changed base, fixed value or pipeline default."""
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for p in space.params:
        if any(values.get(dep, _MISSING) not in allowed for dep, allowed in p.when.items()):
            continue
        if p.fixed:
            values[p.name] = p.dist.value
            continue
        if p.name in record.params:
            value = decode_choice(record.params[p.name])
        else:
            value = _recorded_field(record, p)
            if value is _MISSING:
                return None, f"{p.name} was not searched and the trial does not record its value"
        inside, value = _within(p, value)
        if not inside:
            return None, f"{p.name}={_show(value)} is outside its new domain"
        values[p.name] = value
        params[p.name] = encode_choice(value)
    try:
        arch = space.arch_config(values)
        pipeline = space.pipeline_for(values)
        arch.check_input_size(*pipeline.size)
    except ConfigError as exc:
        if record.arch_id is None:
            return params, None  # the model refused it before and still does: the same (rejected) point
        return None, f"the model rejects it under the new space ({exc.detail})"
    if record.arch_id is None:
        return None, "the model refused it before; the new space builds it"
    if arch.id != record.arch_id:
        return None, "it builds another architecture under the new space (base or fixed values changed)"
    if record.pipeline is not None and pipeline.id != recorded_pipeline_id(record.pipeline):
        diff = first_difference(dict(record.pipeline), pipeline.to_dict())
        return None, "it was trained with another pipeline" + (f" ({diff[0]})" if diff else "")
    return params, None


_MISSING: Any = object()


def _recorded_field(record: TrialRecord, p: Param) -> Any:
    tree = record.arch if p.target == "arch" else record.pipeline
    node: Any = tree
    for part in p.field.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _within(p: Param, value: Any) -> tuple[bool, Any]:
    d = p.dist
    if isinstance(d, Choice):
        encoded = encode_choice(value)
        return encoded in [encode_choice(v) for v in d.values], value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False, value
    if isinstance(d, IntRange):
        if float(value) != int(value):
            return False, value
        v = int(value)
        return d.low <= v <= d.high and (v - d.low) % d.step == 0, v
    assert isinstance(d, FloatRange)
    x, tol = float(value), 1e-9 * max(1.0, abs(float(value)))
    if not d.low - tol <= x <= d.high + tol:
        return False, x
    if d.step is not None and abs(round((x - d.low) / d.step) * d.step + d.low - x) > tol:
        return False, x
    return True, min(max(x, d.low), d.high)


def _show(v: Any) -> str:
    return str(list(v)) if isinstance(v, tuple) else str(v)


# -- building copies -------------------------------------------------------------------------------------


def _frozen(
    t: FrozenTrial,
    state: Any,
    *,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    values: Sequence[float] | None,
    attrs: dict[str, Any],
    constraints: dict[str, float] | None,
) -> FrozenTrial:
    """A copy of `t` with another state, params/distributions, values and record fields (times,
    intermediate values and the rest of its record kept)."""
    import optuna

    user_attrs = {k: v for k, v in t.user_attrs.items() if k not in trial_attrs(**dict.fromkeys(_NOT_COPIED))}
    user_attrs.update(attrs)
    system_attrs = {k: v for k, v in t.system_attrs.items() if k.startswith(_CONSTRAINT_PREFIX)}
    if constraints is not None:
        system_attrs = {_CONSTRAINT_PREFIX + k: float(v) for k, v in constraints.items()}
    complete = t.datetime_complete
    if complete is None:  # a queued or running trial set aside: finished now
        import datetime

        complete = datetime.datetime.now()
    return optuna.trial.FrozenTrial(
        number=t.number,
        state=state,
        value=None,
        values=list(values) if values is not None else None,
        datetime_start=t.datetime_start or complete,
        datetime_complete=complete,
        params=params,
        distributions=distributions,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        intermediate_values=dict(t.intermediate_values),
        trial_id=t._trial_id,
    )


def _trained_values(space: Space, r: TrialRecord) -> list[float] | None:
    """The objective values of a trained variant from its record (None when one is missing)."""
    out = []
    for name in space.objective_names:
        v = r.metric(name)
        if v is None or not math.isfinite(v):
            return None
        out.append(v)
    return out


@dataclasses.dataclass
class CarryReport:
    """What a resume with an edited space did with the previous study's trials."""

    previous: str
    kept: int = 0
    set_aside: dict[str, int] = dataclasses.field(default_factory=dict)
    """Reason -> trials."""
    now_infeasible: int = 0
    """Trained before, over a tightened constraint now."""
    requeued: int = 0
    details: list[str] = dataclasses.field(default_factory=list)
    """``#N: why`` per set-aside trial."""

    def lines(self) -> list[str]:
        out = [f"carried from study {self.previous!r}: {self.kept} trials kept (the sampler sees them)"]
        if self.now_infeasible:
            out.append(
                f"  {self.now_infeasible} of them trained before but over a tightened constraint: infeasible now"
            )
        for why, n in sorted(self.set_aside.items(), key=lambda kv: -kv[1]):
            out.append(f"  set aside: {n} ({why})")
        out += [f"    {d}" for d in self.details[:10]]
        if len(self.details) > 10:
            out.append(f"    ... and {len(self.details) - 10} more (status set_aside in the study)")
        if self.requeued:
            out.append(f"  {self.requeued} queued trials of the previous study queued again")
        return out


def carry_trials(old: Study, new: Study, space: Space) -> CarryReport:
    """Copy every trial of `old` into the empty study `new` (numbers kept), as the module docstring says."""
    import optuna

    State = optuna.trial.TrialState
    report = CarryReport(str(old.study_name))
    frozen = old.get_trials(deepcopy=False)
    records = [TrialRecord.from_trial(t) for t in frozen]
    if any(t.number != i for i, t in enumerate(frozen)):  # Optuna numbers a study's trials 0, 1, ...
        raise ConfigError(f"study {old.study_name!r} has gaps in its trial numbers; use --fresh", key="name")
    constraints = space.config.constraints
    limits = constraint_limits(constraints)
    copies: list[FrozenTrial] = []
    requeue: list[dict[str, Any]] = []

    def aside(t: FrozenTrial, r: TrialRecord, state: Any, values: Any, why: str, detail: str) -> FrozenTrial:
        """FAIL, status set_aside. Optuna's storage refuses a categorical parameter whose choices differ
        from the study's, so the trial keeps no Optuna params: they travel in its record (``set_aside``)
        with its state and values, to be restored if a later revision makes it a point again."""
        report.set_aside[why] = report.set_aside.get(why, 0) + 1
        report.details.append(f"#{t.number}: {detail}")
        was = f"was {r.status}" + (f", a copy of #{r.duplicate_of}" if r.duplicate_of is not None else "")
        before = {"state": state.name, "status": str(r.status), "values": values, "params": dict(r.params)}
        attrs = trial_attrs(
            status=Status.SET_ASIDE,
            reason=f"set aside ({was}): {detail}",
            carried_from=f"{old.study_name}#{t.number}",
            set_aside=before,
        )
        return _frozen(t, State.FAIL, params={}, distributions={}, values=None, attrs=attrs, constraints=None)

    for t, r in zip(frozen, records):
        source = f"{old.study_name}#{t.number}"
        state, values = t.state, (list(t.values) if t.values is not None else None)
        if r.status is Status.SET_ASIDE and r.set_aside:  # set aside by an earlier revision: as it was then
            state = State[str(r.set_aside.get("state"))]
            values = r.set_aside.get("values")
            before = Status(str(r.set_aside.get("status")))
            r = dataclasses.replace(r, state=state.name, status=before, values=tuple(values) if values else None)
        if state in (State.RUNNING, State.WAITING):
            params, _ = point_of(space, r) if r.params and t.state == state else (None, None)
            if params is not None:
                requeue.append(params)
            label = f"{state.name.lower()} in the previous study"
            copies.append(aside(t, r, state, values, label, "not finished when the space changed"))
            continue
        params, why = point_of(space, r)
        if params is None:
            copies.append(aside(t, r, state, values, "not a point of the edited space", why or ""))
            continue
        dists = distributions_of(space, params)
        measured = r.gmacs is not None
        cons = constraint_values(r.costs, limits)  # unmeasured: violated, as the searcher records it
        broken = violations(Costs(r.n_params or 0, r.gmacs or 0.0, r.latency_ms), constraints) if measured else []
        attrs: dict[str, Any] = trial_attrs(carried_from=source, status=r.status, set_aside=None)
        trained = _trained_values(space, r) if r.status in (Status.OK, Status.INFEASIBLE) else None
        if state == State.COMPLETE and trained is not None:
            if broken:
                if r.status is Status.OK:
                    report.now_infeasible += 1
                attrs.update(trial_attrs(status=Status.INFEASIBLE, reason="constraints: " + "; ".join(broken)))
                values = stand_in_values(space.config.objectives, r.costs, records)
            else:  # ok, or trained before and infeasible only under a limit since loosened
                attrs.update(trial_attrs(status=Status.OK, reason=None))
                values = values if r.status is Status.OK and values is not None else trained
        elif state == State.COMPLETE and r.status is Status.INFEASIBLE:
            if not broken:
                label = "infeasible before, within the edited constraints (not trained yet)"
                copies.append(aside(t, r, state, values, label, "it may be proposed and trained now"))
                continue
            attrs.update(trial_attrs(reason="constraints: " + "; ".join(broken)))
            values = stand_in_values(space.config.objectives, r.costs, records)
        report.kept += 1
        copies.append(
            _frozen(t, state, params=params, distributions=dists, values=values, attrs=attrs, constraints=cons)
        )
    new.add_trials(copies)
    for params in requeue:
        new.enqueue_trial(params)
    report.requeued = len(requeue)
    return report


# -- warm start --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """An opened study to import from."""

    where: str
    """The folder (absolute) or storage URL it was opened from."""
    study: Study
    results_dir: Path | None

    @property
    def label(self) -> str:
        return f"{self.study.study_name} in {self.where}"


def parse_sources(specs: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """``RESULTS_OR_STORAGE[#STUDY][,...]`` (one string or several) -> [(location, study name or None)]."""
    items = [specs] if isinstance(specs, str) else list(specs)
    out: list[tuple[str, str | None]] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                raise ConfigError("expected RESULTS_OR_STORAGE[#STUDY][,...]; got an empty entry", key="--warm-start")
            loc, _, name = part.partition("#")
            out.append((loc, name or None))
    return out


def open_sources(specs: str | Sequence[str], space: Space, *, here: Path | None = None) -> list[Source]:
    """Open each source read-only and check it can inform `space`: same mode (search), pipeline,
    objectives and (when latency counts) latency settings. ConfigError (key ``--warm-start``) names
    the source and what differs; nothing is written anywhere."""
    from radio_nas.study.storage import open_study as open_for_reading

    sources: list[Source] = []
    for loc, name in parse_sources(specs):
        try:
            handle = open_for_reading(loc, name)
        except ConfigError as exc:
            raise ConfigError(f"{loc}: {exc.detail}", key="--warm-start") from None
        where = loc if "://" in loc else str(Path(loc).resolve())
        rec = handle.record
        if here is not None and rec.results_dir == str(Path(here).resolve()):
            raise ConfigError(
                f"{loc} is this sweep's own results folder (its trials are in the study already)", key="--warm-start"
            )
        _check_source(loc, handle.name, rec, handle.results_dir, space)
        sources.append(Source(where, handle.study, handle.results_dir))
    return sources


def _check_source(loc: str, name: str, rec: StudyRecord, results_dir: Path | None, space: Space) -> None:
    def refuse(what: str) -> ConfigError:
        return ConfigError(
            f"{loc}: study {name!r} {what}; only trials of the same setup can be imported", key="--warm-start"
        )

    if rec.mode != "search":
        raise refuse(f"is an {rec.mode}")
    mine = [(o.metric, o.direction) for o in space.config.objectives]
    theirs = [(o.metric, o.direction) for o in rec.objectives]
    if mine != theirs:
        raise refuse(f"has other objectives ({', '.join(m for m, _ in theirs)}; here {', '.join(m for m, _ in mine)})")
    if rec.pipeline is None:
        raise refuse("does not record its pipeline")
    diff = first_difference(dict(rec.pipeline), space.pipeline.to_dict())
    if diff is not None:
        raise refuse(f"was trained with another pipeline ({diff[0]}: {diff[1]} here {diff[2]})")
    if latency_matters(space.config):
        theirs_latency = rec.latency
        if theirs_latency is None and results_dir is not None and (results_dir / SPACE_COPY).is_file():
            try:
                theirs_latency = parse_space(load_yaml(results_dir / SPACE_COPY))[0].latency.to_dict()
            except ConfigError:
                theirs_latency = None
        if theirs_latency is None:
            raise refuse("does not say how its latency was timed (latency counts in this space)")
        from radio_nas.search.space import LatencySettings

        diff = first_difference(
            LatencySettings.from_dict(dict(theirs_latency)).to_dict(), space.config.latency.to_dict()
        )
        if diff is not None:
            raise refuse(f"timed latency otherwise (latency.{diff[0]}: {diff[1]} here {diff[2]})")


@dataclasses.dataclass
class ImportReport:
    """What a warm start imported and skipped (reason -> trials)."""

    imported: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    sources: list[str] = dataclasses.field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def lines(self) -> list[str]:
        out = [
            f"warm start from {', '.join(self.sources)}: {self.imported} trials imported (not counted by the budget)"
        ]
        for why, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
            out.append(f"  skipped {n}: {why}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": dict(self.skipped), "sources": list(self.sources)}


def import_trials(study: Study, space: Space, sources: Sequence[Source]) -> ImportReport:
    """Add the importable trials of `sources` to `study` (see the module docstring)."""
    import optuna

    report = ImportReport(sources=[s.label for s in sources])
    here = read_trials(study)
    have = {
        (r.arch_id, stable_id(dict(r.pipeline)))
        for r in here
        if r.state == "COMPLETE" and r.status is Status.OK and r.arch_id and r.pipeline
    }
    done = {r.imported_from for r in here if r.imported_from}
    limits = constraint_limits(space.config.constraints)
    for src in sources:
        batch: list[FrozenTrial] = []
        for t in src.study.get_trials(deepcopy=False):
            r = TrialRecord.from_trial(t)
            label = f"{src.study.study_name}#{t.number} in {src.where}"
            if label in done:
                report.skip("imported already")
                continue
            if r.duplicate_of is not None:
                report.skip("a copy of another trial of its study")
                continue
            if not r.is_candidate or not r.arch_id or not r.pipeline:
                report.skip("not fully trained")
                continue
            params, _ = point_of(space, r)
            if params is None:
                report.skip("not a point of this space")
                continue
            key = (r.arch_id, stable_id(dict(r.pipeline)))
            if key in have:
                report.skip("trained or imported here already")
                continue
            broken = violations(Costs(r.n_params or 0, r.gmacs or 0.0, r.latency_ms), space.config.constraints)
            if broken:
                report.skip("breaks this space's constraints")
                continue
            weights = None
            if r.weights_path and src.results_dir is not None and (src.results_dir / r.weights_path).is_file():
                weights = str((src.results_dir / r.weights_path).resolve())  # absolute: another folder's file
            attrs = trial_attrs(imported_from=label, weights_path=weights, carried_from=None, status=Status.OK)
            batch.append(
                _frozen(
                    t,
                    optuna.trial.TrialState.COMPLETE,
                    params=params,
                    distributions=distributions_of(space, params),
                    values=list(t.values) if t.values is not None else None,
                    attrs=attrs,
                    constraints=constraint_values(r.costs, limits),
                )
            )
            have.add(key)
        study.add_trials(batch)
        report.imported += len(batch)
    recorded = list(StudyRecord.from_study(study).warm_start)
    write_study(study, warm_start=recorded + [s for s in report.sources if s not in recorded])
    return report
