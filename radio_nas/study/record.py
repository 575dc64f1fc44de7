"""What a sweep leaves in its Optuna study, in one place: statuses, metric names, the trial record.

    from radio_nas.study import TrialRecord, Status, write_trial, read_trials
    write_trial(trial, status=Status.OK, n_params=1_234_567, metrics={"fidelity": 0.7})
    records = read_trials(study)                      # one frozen TrialRecord per Optuna trial
    [r.number for r in records if r.is_candidate]     # fully trained: the Pareto candidates

The sweep (:mod:`radio_nas.search`) is the only writer; the report, export and validation only
read. Records live in Optuna user attributes (so optuna-dashboard shows them) under the keys of
:data:`TRIAL_ATTRS`; :func:`write_trial` refuses any other name, and :meth:`TrialRecord.from_trial`
is the one reader. Study-level facts (objectives, mode, space, pipeline, results folder, ablation
design) are a :class:`StudyRecord`, written with :func:`write_study` and read with
:meth:`StudyRecord.from_study`.

Trial states: COMPLETE for fully trained trials (status ``ok``, or a re-proposed copy of one,
``duplicate_of`` set, or one imported from another study, ``imported_from`` set) and for infeasible
variants (status ``infeasible``, never trained, told with stand-in values and constraint values so
NSGA-II and GP learn the infeasible region; never a candidate); scheduler-stopped trials are PRUNED
with status ``pruned`` and their curve; failures are FAIL with a reason. Use
:attr:`TrialRecord.is_candidate`, not the state, to find results.

Carried and imported trials (see :mod:`radio_nas.search.carry`): a resume with an edited space
copies the folder's trials into a new study (one per space revision, numbers kept): those that are
points of the new space keep their outcome (``carried_from``), the others are FAIL with status
``set_aside`` (never candidates, never counted by the budget). A warm start adds the trained trials
of other studies as COMPLETE ``ok`` trials with ``imported_from``: candidates, but not counted by
this sweep's budget.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from radio_nas._config import Config

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial


class Status(enum.StrEnum):
    """A trial's outcome as radio-nas records it (finer than Optuna's state)."""

    OK = "ok"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by a scheduler
    INFEASIBLE = "infeasible"  # refused before training (constraints, or the model refused it)
    RUNNING = "running"
    WAITING = "waiting"
    SET_ASIDE = "set_aside"  # not a point of the edited space it was carried into (kept, never a candidate)

    def __str__(self) -> str:
        return self.value


TRAINED_STATUSES = frozenset({Status.OK, Status.FAILED, Status.PRUNED})
"""What the budget counts: trials that spent training time."""

COST_METRICS = ("params", "gmacs", "latency_ms")
"""Measured by the sweep driver before training (constraints and cost objectives)."""
MEASURED_METRICS = COST_METRICS
TRIAL_METRICS = (
    "fidelity",
    "knn_accuracy",
    "train_loss_final",
    "train_loss_mean",
    "steps_per_s",
    "images_per_s",
    "wall_s",
)
"""Returned by a trained trial (``fidelity/<teacher>/<term>`` per term too)."""
DEFAULT_OBJECTIVES = (
    {"metric": "fidelity", "direction": "maximize"},
    {"metric": "gmacs", "direction": "minimize"},
    {"metric": "latency_ms", "direction": "minimize"},
)
CONSTRAINT_LIMITS = {"params": "max_params", "gmacs": "max_gmacs", "latency_ms": "max_latency_ms"}
"""Cost metric -> the space's constraint key bounding it."""


@dataclasses.dataclass(frozen=True)
class Objective(Config):
    """One objective of a sweep: the metric, and whether it is maximised or minimised (a space's
    ``objectives`` entries, and what a study declares)."""

    metric: str
    direction: Literal["maximize", "minimize"]


# Record field -> user attribute key (the keys are the study format; keep them stable).
TRIAL_ATTRS: dict[str, str] = {
    "status": "status",
    "reason": "failure_reason",
    "arch": "arch",
    "arch_id": "arch_id",
    "pipeline": "pipeline",
    "seed": "seed",
    "n_params": "params",
    "gmacs": "gmacs",
    "latency_ms": "latency_ms",
    "latency_device": "latency_device",
    "latency_quiet": "latency_quiet",
    "metrics": "metrics",
    "curve": "curve",
    "loss_curve": "loss_curve",
    "steps": "steps",
    "train_seconds": "train_seconds",
    "duplicate_of": "duplicate_of",
    "weights_path": "weights_path",
    "orphaned": "orphaned",
    "requeued_from": "requeued_from",
    "driver": "driver",
    "phase": "phase",
    "ray_node_id": "ray_node_id",
    "carried_from": "carried_from",
    "imported_from": "imported_from",
    "set_aside": "set_aside",
}


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One point of a trial's learning curve: its step, the fidelity then (None when it was not
    finite), and seconds on the trial's clock (training and evaluations since the first step, not
    the teacher cache or the model build; None where a table did not record them)."""

    step: int
    fidelity: float | None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        finite = self.fidelity is not None and math.isfinite(self.fidelity)
        return {"step": self.step, "fidelity": self.fidelity if finite else None, "seconds": self.seconds}


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial of a sweep as radio-nas recorded it (read-only; see the module docstring)."""

    number: int
    state: str
    """Optuna's TrialState name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING."""
    status: Status
    reason: str | None = None
    values: tuple[float, ...] | None = None
    """Objective values in the study's order (COMPLETE trials only)."""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Optuna's search parameters (choices encoded as Optuna stores them)."""
    distributions: Mapping[str, BaseDistribution] = dataclasses.field(default_factory=dict)
    """Optuna's distribution of each parameter (choices in the space's order, ranges, log scale)."""
    arch: Mapping[str, Any] | None = None
    arch_id: str | None = None
    pipeline: Mapping[str, Any] | None = None
    seed: int | None = None
    n_params: int | None = None
    gmacs: float | None = None
    latency_ms: float | None = None
    latency_device: str | None = None
    latency_quiet: bool | None = None
    """False: timed while trials of the sweep may have run (the pause gate timed out)."""
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    curve: tuple[Mapping[str, float], ...] = ()
    """Learning curve: ``{step, fidelity, seconds}`` at every eval step."""
    loss_curve: Sequence[Any] | None = None
    steps: int | None = None
    train_seconds: float | None = None
    duplicate_of: int | None = None
    """A re-proposed variant trained already: this trial copies that one's outcome."""
    weights_path: str | None = None
    """Relative to the results folder."""
    orphaned: bool = False
    requeued_from: int | None = None
    driver: str | None = None
    phase: str | None = None
    """While RUNNING: "measuring" (costs, in the driver) or "training" (a Ray worker)."""
    ray_node_id: str | None = None
    duration_s: float | None = None
    constraints: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Optuna's constraint values (``max_params`` etc.: value / limit - 1, <= 0 when satisfied)."""
    carried_from: str | None = None
    """``<study>#<number>``: copied from the previous revision of this folder's study (an edited space)."""
    imported_from: str | None = None
    """``<study>#<number> in <folder or storage>``: trained by another sweep (warm start)."""
    set_aside: Mapping[str, Any] | None = None
    """Status ``set_aside``: ``{state, status, values, params}`` as the trial was before (its params are
    in :attr:`params` too; Optuna holds none for it)."""

    @property
    def is_candidate(self) -> bool:
        """A fully trained trial: COMPLETE, status ok, finite objective values, not a copy (imported
        trials are candidates; set-aside ones never are)."""
        return (
            self.state == "COMPLETE"
            and self.status is Status.OK
            and self.duplicate_of is None
            and self.values is not None
            and all(v is not None and math.isfinite(v) for v in self.values)
        )

    @property
    def trained(self) -> bool:
        """Counted by the budget: it spent training time here (not an orphan re-run, not a copy, not
        imported from another study)."""
        return (
            self.imported_from is None
            and self.state in ("COMPLETE", "PRUNED", "FAIL")
            and self.status in TRAINED_STATUSES
            and not self.orphaned
            and self.duplicate_of is None
            and self.phase != "measuring"  # failed before training (its costs could not be measured)
        )

    @property
    def costs(self) -> dict[str, Any]:
        return {"params": self.n_params, "gmacs": self.gmacs, "latency_ms": self.latency_ms}

    def metric(self, name: str) -> float | None:
        """A cost (params, gmacs, latency_ms) or a recorded trial metric; None when absent."""
        value = self.costs.get(name) if name in COST_METRICS else self.metrics.get(name)
        if value is None or isinstance(value, bool):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        """The record of an Optuna trial (any trial: attributes a sweep never set read as absent)."""
        ua = trial.user_attrs
        state = trial.state.name
        status = _status(ua.get("status"), state)
        reason = ua.get("failure_reason")
        if reason is None and trial.system_attrs.get("fail_reason"):
            reason = str(trial.system_attrs["fail_reason"]).splitlines()[0]
        metrics = ua.get("metrics")
        curve = ua.get("curve")
        duration = trial.duration
        seed = ua.get("seed", trial.params.get("seed"))
        return cls(
            number=trial.number,
            state=state,
            status=status,
            reason=reason,
            values=tuple(float(v) for v in trial.values) if trial.values is not None else None,
            params=dict(trial.params) or _set_aside_params(ua.get("set_aside")),
            distributions=dict(trial.distributions),
            arch=ua.get("arch") if isinstance(ua.get("arch"), dict) else None,
            arch_id=ua.get("arch_id"),
            pipeline=ua.get("pipeline") if isinstance(ua.get("pipeline"), dict) else None,
            seed=seed,
            n_params=ua.get("params"),
            gmacs=ua.get("gmacs"),
            latency_ms=ua.get("latency_ms"),
            latency_device=ua.get("latency_device"),
            latency_quiet=ua.get("latency_quiet"),
            metrics=metrics if isinstance(metrics, dict) else {},
            curve=tuple(c for c in curve if isinstance(c, dict)) if isinstance(curve, list) else (),
            loss_curve=ua.get("loss_curve"),
            steps=ua.get("steps"),
            train_seconds=ua.get("train_seconds"),
            duplicate_of=ua.get("duplicate_of"),
            weights_path=ua.get("weights_path") or None,
            orphaned=bool(ua.get("orphaned")),
            requeued_from=ua.get("requeued_from"),
            driver=ua.get("driver"),
            phase=ua.get("phase"),
            ray_node_id=ua.get("ray_node_id"),
            duration_s=duration.total_seconds() if duration is not None else None,
            constraints=dict(trial.constraints),
            carried_from=ua.get("carried_from"),
            imported_from=ua.get("imported_from"),
            set_aside=ua.get("set_aside") if isinstance(ua.get("set_aside"), dict) else None,
        )


def _set_aside_params(before: Any) -> dict[str, Any]:
    params = before.get("params") if isinstance(before, dict) else None
    return dict(params) if isinstance(params, dict) else {}


def _status(recorded: Any, state: str) -> Status:
    try:
        return Status(recorded)
    except ValueError:
        pass
    default = {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
    return Status(default.get(state, "failed"))


def write_trial(trial: Trial, **fields: Any) -> None:
    """Record `fields` (names of :class:`TrialRecord` fields in :data:`TRIAL_ATTRS`) on a running
    trial. The one writer: an unknown name is a programming error and raises TypeError."""
    unknown = sorted(set(fields) - set(TRIAL_ATTRS))
    if unknown:
        raise TypeError(f"not trial record fields: {', '.join(unknown)}")
    for name, value in fields.items():
        trial.set_user_attr(TRIAL_ATTRS[name], value.value if isinstance(value, Status) else value)


def trial_attrs(**fields: Any) -> dict[str, Any]:
    """The user attributes :func:`write_trial` would write for `fields`, as a dict (for trials built
    whole, e.g. copies added with ``Study.add_trial``); unknown names raise TypeError."""
    unknown = sorted(set(fields) - set(TRIAL_ATTRS))
    if unknown:
        raise TypeError(f"not trial record fields: {', '.join(unknown)}")
    return {TRIAL_ATTRS[name]: value.value if isinstance(value, Status) else value for name, value in fields.items()}


def read_trials(study: Study) -> list[TrialRecord]:
    """Every trial of `study` as a record, in trial-number order."""
    return [TrialRecord.from_trial(t) for t in study.get_trials(deepcopy=False)]


def constraint_values(costs: Mapping[str, Any], limits: Mapping[str, float | None]) -> dict[str, float]:
    """Optuna constraint values for `costs` under `limits` (cost metric -> limit): per bounded
    metric ``max_<metric>: value / limit - 1`` (<= 0 when satisfied; relative, so params and GMACs
    compare). An unmeasured cost counts as violated (1.0): the variant could not be measured."""
    out = {}
    for metric, limit in limits.items():
        if limit is None:
            continue
        value = costs.get(metric)
        out[CONSTRAINT_LIMITS[metric]] = 1.0 if value is None else float(value) / float(limit) - 1.0
    return out


# -- the study --------------------------------------------------------------------------------------

STUDY_ATTRS = (
    "radio_nas_version",
    "space_name",
    "space_file",
    "space_hash",
    "mode",
    "objectives",
    "pipeline",
    "results_dir",
    "parameters",
    "ablation",
    "validation",
    "revision",
    "previous_study",
    "latency",
    "warm_start",
)


@dataclasses.dataclass(frozen=True)
class StudyRecord:
    """What a sweep records about its study as a whole."""

    name: str
    objectives: tuple[Objective, ...]
    mode: str = "search"
    space_name: str | None = None
    space_file: str | None = None
    space_hash: str | None = None
    pipeline: Mapping[str, Any] | None = None
    results_dir: str | None = None
    parameters: tuple[str, ...] = ()
    radio_nas_version: str | None = None
    ablation: Mapping[str, Any] | None = None
    """The design: ``{design, factors: {name: [levels]}, base: {name: level}}`` (Optuna-encoded levels)."""
    validation: Mapping[str, Any] | None = None
    revision: int = 1
    """1 for a folder's first study; each resume with an edited space makes the next one."""
    previous_study: str | None = None
    """The study of the previous revision, whose trials this one carried."""
    latency: Mapping[str, Any] | None = None
    """The space's latency settings (None: a study made before they were recorded)."""
    warm_start: tuple[str, ...] = ()
    """Sources whose trials were imported (``<study> in <folder or storage>``)."""

    @classmethod
    def from_study(cls, study: Study) -> StudyRecord:
        ua = study.user_attrs
        return cls(
            name=str(study.study_name),
            objectives=tuple(study_objectives(study)),
            mode=str(ua.get("mode", "search")),
            space_name=ua.get("space_name"),
            space_file=ua.get("space_file"),
            space_hash=ua.get("space_hash"),
            pipeline=ua.get("pipeline") if isinstance(ua.get("pipeline"), dict) else None,
            results_dir=ua.get("results_dir"),
            parameters=tuple(ua.get("parameters") or ()),
            radio_nas_version=ua.get("radio_nas_version"),
            ablation=ua.get("ablation") if isinstance(ua.get("ablation"), dict) else None,
            validation=ua.get("validation") if isinstance(ua.get("validation"), dict) else None,
            revision=int(ua.get("revision") or 1),
            previous_study=ua.get("previous_study"),
            latency=ua.get("latency") if isinstance(ua.get("latency"), dict) else None,
            warm_start=tuple(ua.get("warm_start") or ()),
        )


def write_study(study: Study, **fields: Any) -> None:
    """Record study-level `fields` (names in :data:`STUDY_ATTRS`); unknown names raise TypeError."""
    unknown = sorted(set(fields) - set(STUDY_ATTRS))
    if unknown:
        raise TypeError(f"not study record fields: {', '.join(unknown)}")
    for name, value in fields.items():
        study.set_user_attr(name, value)


def study_objectives(study: Study) -> list[Objective]:
    """The study's objectives in value order: its ``objectives`` attr, else metric names."""
    directions = [cast(Literal["maximize", "minimize"], d.name.lower()) for d in study.directions]
    declared = study.user_attrs.get("objectives")
    if isinstance(declared, list) and len(declared) == len(directions):
        return [Objective(str(o.get("metric", f"objective_{i}")), directions[i]) for i, o in enumerate(declared)]
    names = study.metric_names or [f"objective_{i}" for i in range(len(directions))]
    return [Objective(str(n), d) for n, d in zip(names, directions)]
