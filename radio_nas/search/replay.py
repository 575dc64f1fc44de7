"""Exhaustive tables of a finite space and sampler replay against them (``radio-nas replay``).

    >>> from radio_nas.search.replay import load_table, write_table, replay
    >>> table = load_table("results/mra-grid")          # a finished exhaustive study, or its CSV
    >>> write_table(table, "benchmarks/mra_exhaustive.csv")
    >>> out = replay(table, ["tpe", "random"], trials=24, repeats=10, seed=0)
    >>> out["samplers"]["tpe"]["hv_ratio_median"]

An **exhaustive table** holds one row per point of a finite space (every combination of the sampled
parameters' values): its status (``ok``, ``infeasible``, ``failed``), measured costs, objective
metrics and learning curve. It comes from a study in which every point has a finished trial
(``benchmarks/exhaustive.py`` runs that grid sweep); a study missing points is refused.

A **replay** simulates a sweep without training anything: a real Optuna sampler (in an in-memory
study with the space's directions and sampler settings) proposes, the space's own sampling code
turns the proposal into a point, and the table answers it, with the real sweep's rules
(:mod:`radio_nas.search.searcher`): a variant the model rejects or that breaks a constraint is told
PRUNED (status infeasible) and not counted; a variant identical to one trained (same arch id and
pipeline id; the sweep also copies ``auto`` windows that resolve to a pinned variant's, which a
table of arch ids cannot see, so a replay trains those twice) is told COMPLETE with its values and
``duplicate_of``, not counted, and a random untried point is queued; ``budget.max_infeasible`` such
proposals in a row end the sweep; the budget counts trained trials (ok, failed, pruned). With a
scheduler (``moasha``) each trained trial's curve is fed to it rung by rung; a stopped trial is
PRUNED and costs its curve up to the stop.

Hypervolume ratio: objectives are min-max normalised over the table's fully trained points (the
report's normalisation, :func:`radio_nas.report.pareto.normalised_hypervolume`, reference = worst +
10 % of the range); the ratio is the hypervolume of the trials found so far over the table's.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radio_nas._config import ConfigError, load_yaml, set_dotted, stable_id
from radio_nas.search.costs import constraint_limits, stand_in_values
from radio_nas.search.space import Space, decode_choice, encode_choice, parse_space
from radio_nas.study.pareto import (
    REFERENCE_MARGIN,
    hypervolume,
    pareto_mask,
    to_minimisation,
)
from radio_nas.study.record import (
    StudyRecord,
    TrialRecord,
    constraint_values,
    read_trials,
    trial_attrs,
    write_trial,
)

TABLE_FORMAT = "radio-nas-exhaustive/1"
STATUSES = ("ok", "infeasible", "failed")
SAMPLERS = ("tpe", "nsga2", "random", "gp", "grid")
TARGET_RATIO = 0.95
BASE_COLUMNS = ("point", "trial", "arch_id", "pipeline_id", "status", "params", "gmacs", "latency_ms", "fidelity")
TAIL_COLUMNS = ("steps", "train_seconds", "curve", "failure_reason")
_REPLAY_KEYS = (
    "sampler.n_startup_trials",
    "scheduler.grace_period",
    "scheduler.reduction_factor",
    "budget.max_infeasible",
)
"""Space keys a replay may change (--set): they do not change what the table's points are."""


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    step: int
    fidelity: float
    seconds: float | None = None
    """Training seconds up to `step`; None when the study did not record it (estimated linearly)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One point of the space and what training it gave."""

    point: int
    params: dict[str, Any]
    """Optuna's (encoded) value of every sampled parameter."""
    status: str
    arch_id: str | None = None
    pipeline_id: str | None = None
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    """params, gmacs, latency_ms, fidelity and every other objective metric."""
    curve: tuple[CurvePoint, ...] = ()
    steps: int | None = None
    train_seconds: float | None = None
    trial: int | None = None
    failure_reason: str | None = None

    @property
    def variant(self) -> tuple[str, str] | None:
        """What the sweep treats as "the same variant" (arch id, pipeline id); None if rejected."""
        return (self.arch_id, self.pipeline_id) if self.arch_id and self.pipeline_id else None

    def seconds_at(self, step: int) -> float:
        """Training seconds spent up to `step` (the curve's, else a share of the trial's)."""
        for p in self.curve:
            if p.step == step and p.seconds is not None:
                return p.seconds
        total = self.train_seconds or 0.0
        return total * step / self.steps if self.steps else total


@dataclasses.dataclass(frozen=True)
class Table:
    """An exhaustive table: every point of a finite space (see the module docstring)."""

    space: Space
    rows: tuple[Row, ...]
    source: str
    steps: int | None = None
    """Training steps of a full trial (the pipeline's)."""
    eval_every: int | None = None
    """Steps between intermediate evaluations (the scheduler's default grace period)."""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.space.sampled]

    def key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[n] for n in self.names)

    def by_key(self) -> dict[tuple[Any, ...], Row]:
        return {self.key(r.params): r for r in self.rows}

    def candidates(self) -> list[Row]:
        """Fully trained points with finite objective values (Pareto candidates)."""
        return [r for r in self.rows if r.status == "ok" and _finite_objectives(self.space, r)]

    def objective_values(self, rows: Sequence[Row]) -> np.ndarray:
        names = self.space.objective_names
        return np.array([[_float(r.metrics.get(n)) for n in names] for r in rows], dtype=np.float64).reshape(
            len(rows), len(names)
        )

    def pareto_variants(self) -> set[tuple[str, str]]:
        cand = self.candidates()
        if not cand:
            return set()
        mask = pareto_mask(self.objective_values(cand), self.space.objective_directions)
        return {v for r, m in zip(cand, mask) if m and (v := r.variant) is not None}


# -- loading and writing -----------------------------------------------------------------------------


def load_table(source: str | Path, *, study_name: str | None = None) -> Table:
    """A table from an exported CSV or a finished exhaustive study (results folder, .db, URL)."""
    path = Path(str(source))
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    return table_from_study(source, study_name=study_name)


def table_from_study(source: str | Path, *, study_name: str | None = None) -> Table:
    """The table of a study in which every point of its (finite) space has a finished trial;
    otherwise ConfigError saying how many points are missing."""
    from radio_nas.study.storage import open_study

    handle = open_study(source, study_name)
    study = handle.study
    if handle.results_dir is None or not (handle.results_dir / "space.yaml").is_file():
        raise ConfigError("expected a sweep results folder with its space.yaml next to the study", file=str(source))
    raw = load_yaml(handle.results_dir / "space.yaml")
    space = space_from_raw(raw, where=str(source))
    if space.config.mode != "search":
        raise ConfigError("is an ablation study; replay needs a search space's exhaustive grid", file=str(source))
    grid = _grid_or_refuse(space, str(source))
    names = list(grid)
    best, pruned = _finished_points(study, names)
    points = list(itertools.product(*grid.values()))
    missing = [k for k in points if k not in best]
    if missing:
        example = ", ".join(f"{n}={v}" for n, v in zip(names, missing[0]))
        stopped = f" ({len(pruned)} trials were stopped early by a scheduler)" if pruned else ""
        raise ConfigError(
            f"not an exhaustive study: {len(missing)} of {len(points)} points of space "
            f"{space.name!r} have no finished trial{stopped}, e.g. {example}; run the whole grid "
            f"first (python benchmarks/exhaustive.py SPACE)",
            file=str(source),
        )
    rows = tuple(_row_from_trial(i, dict(zip(names, k)), best[k], space) for i, k in enumerate(points))
    record = StudyRecord.from_study(study)
    pipeline = record.pipeline or {}
    return Table(
        space,
        rows,
        str(source),
        steps=_int(pipeline.get("steps")),
        eval_every=_int((pipeline.get("eval") or {}).get("every")),
        meta={"study": study.study_name, "study_space_hash": record.space_hash},
    )


def _finished_points(study: Any, names: list[str]) -> tuple[dict[tuple[Any, ...], Any], list[int]]:
    """Point -> its most informative finished trial (ok, else failed, else infeasible); and the
    numbers of trials a scheduler stopped (they do not make a point finished)."""
    best: dict[tuple[Any, ...], Any] = {}
    pruned: list[int] = []
    rank = {"ok": 0, "failed": 1, "infeasible": 2}
    for t in study.get_trials(deepcopy=False):
        r = TrialRecord.from_trial(t)
        if not t.state.is_finished() or r.orphaned or not t.params:
            continue
        if r.status == "pruned":
            pruned.append(t.number)
            continue
        if r.status not in rank or any(n not in t.params for n in names):
            continue
        key = tuple(t.params[n] for n in names)
        if key not in best or rank[r.status] < rank[TrialRecord.from_trial(best[key]).status]:
            best[key] = t
    return best, pruned


def missing_points(study: Any, space: Space) -> list[dict[str, Any]]:
    """The points of a finite space with no finished trial in `study` (Optuna-encoded params)."""
    grid = _grid_or_refuse(space, space.name)
    best, _ = _finished_points(study, list(grid))
    return [dict(zip(grid, k)) for k in itertools.product(*grid.values()) if k not in best]


def _row_from_trial(point: int, params: dict[str, Any], t: Any, space: Space) -> Row:
    r = TrialRecord.from_trial(t)
    status = str(r.status)
    metrics: dict[str, float | None] = {k: _float(v) for k, v in r.costs.items()}
    trained = r.metrics
    for name in ("fidelity", *space.objective_names):
        if name not in metrics:
            metrics[name] = _float(trained.get(name))
    pipeline = r.pipeline
    steps = _int(trained.get("steps"))
    seconds = _float(trained.get("seconds")) or _float(trained.get("wall_s"))  # the trial clock, as its curve
    curve = _trial_curve(t, r, steps, seconds, _float(trained.get("fidelity")) if status == "ok" else None)
    return Row(
        point,
        params,
        status,
        arch_id=r.arch_id,
        pipeline_id=stable_id(dict(pipeline)) if pipeline is not None else None,
        metrics=metrics,
        curve=curve,
        steps=steps if status != "infeasible" else None,
        train_seconds=seconds if status != "infeasible" else None,
        trial=int(r.duplicate_of) if r.duplicate_of is not None else t.number,
        failure_reason=r.reason,
    )


def _trial_curve(
    t: Any, r: TrialRecord, steps: int | None, seconds: float | None, final: float | None
) -> tuple[CurvePoint, ...]:
    """Eval-time fidelity per step, [{step, fidelity, seconds}]: the ``curve`` attribute (a trial
    stopped by moasha), else the trial result's ``fidelity_curve`` (in ``metrics``), else Optuna's
    intermediate values; the final fidelity closes a trained curve."""
    recorded: Any = list(r.curve) if r.curve else r.metrics.get("fidelity_curve")
    points: dict[int, CurvePoint] = {}
    if isinstance(recorded, list):
        for p in recorded:
            if isinstance(p, dict) and p.get("step") is not None and _float(p.get("fidelity")) is not None:
                points[int(p["step"])] = CurvePoint(int(p["step"]), float(p["fidelity"]), _float(p.get("seconds")))
    else:
        for step, value in sorted(t.intermediate_values.items()):
            if value is not None and math.isfinite(value):
                points[int(step)] = CurvePoint(int(step), float(value))
    if final is not None and steps and steps not in points:
        points[steps] = CurvePoint(steps, final, seconds)
    return tuple(points[s] for s in sorted(points))


def write_table(table: Table, path: str | Path) -> Path:
    """The table as CSV: a first ``# {json}`` line (format, space, pipeline steps), then one row per point.

    Columns: ``point, <one per sampled parameter>, trial, arch_id, pipeline_id, status, params, gmacs,
    latency_ms, fidelity, <other objective metrics>, steps, train_seconds, curve, failure_reason``.
    A parameter cell is the value as written in the space (JSON for lists); ``curve`` is JSON
    ``[{"step", "fidelity", "seconds"}]``; empty cells are missing values.
    """
    path = Path(path)
    extra = [n for n in table.space.objective_names if n not in BASE_COLUMNS]
    cols = ["point", *table.names, *BASE_COLUMNS[1:], *extra, *TAIL_COLUMNS]
    meta = {
        "format": TABLE_FORMAT,
        "space_name": table.space.name,
        "space_hash": table.space.hash,
        "points": len(table.rows),
        "steps": table.steps,
        "eval_every": table.eval_every,
        "space": table.space.raw,
        **table.meta,
    }
    buf = io.StringIO()
    buf.write("# " + json.dumps(meta, default=str) + "\n")  # key order kept: parameter order matters
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in table.rows:
        cells: dict[str, Any] = {
            "point": r.point,
            "trial": r.trial,
            "arch_id": r.arch_id,
            "pipeline_id": r.pipeline_id,
            "status": r.status,
            "steps": r.steps,
            "train_seconds": _num(r.train_seconds),
            "failure_reason": r.failure_reason,
            "curve": json.dumps(
                [{"step": p.step, "fidelity": _num(p.fidelity), "seconds": _num(p.seconds)} for p in r.curve]
            ),
        }
        cells.update({n: _param_cell(r.params[n]) for n in table.names})
        cells.update({n: _num(r.metrics.get(n)) for n in ("params", "gmacs", "latency_ms", "fidelity", *extra)})
        writer.writerow(["" if cells.get(c) is None else cells[c] for c in cols])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return path


def read_csv(path: str | Path) -> Table:
    """A table written by :func:`write_table` (checked against its own space's grid)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file", file=path)
    text = path.read_text()
    first, _, body = text.partition("\n")
    try:
        meta = json.loads(first[1:]) if first.startswith("#") else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != TABLE_FORMAT:
        raise ConfigError(
            f'expected an exhaustive table (first line \'# {{"format": "{TABLE_FORMAT}", ...}}\' '
            "as written by benchmarks/exhaustive.py)",
            file=path,
        )
    space = space_from_raw(meta.get("space") or {}, where=str(path))
    grid = _grid_or_refuse(space, str(path))
    names = list(grid)
    reader = csv.DictReader(io.StringIO(body))
    missing_cols = [c for c in ("point", *names, "status", "curve") if c not in (reader.fieldnames or [])]
    if missing_cols:
        raise ConfigError(f"missing column {missing_cols[0]!r}", file=path)
    rows = []
    for line, rec in enumerate(reader, start=3):
        where = f"line {line}"
        params = {}
        for n in names:
            value = encode_choice(_parse_param_cell(rec[n]))
            if value not in grid[n]:
                raise ConfigError(f"{n}={rec[n]!r} is not a value of the space ({grid[n]})", file=path, key=where)
            params[n] = value
        status = rec["status"]
        if status not in STATUSES:
            raise ConfigError(f"status {status!r}; expected one of {', '.join(STATUSES)}", file=path, key=where)
        try:
            curve = tuple(
                CurvePoint(int(p["step"]), float(p["fidelity"]), _float(p.get("seconds")))
                for p in json.loads(rec["curve"] or "[]")
            )
        except (ValueError, TypeError, KeyError):
            raise ConfigError("curve: expected JSON [{step, fidelity, seconds}]", file=path, key=where) from None
        metric_cols = [
            c
            for c in (reader.fieldnames or [])
            if c not in names and c not in ("point", "trial", "arch_id", "pipeline_id", "status", *TAIL_COLUMNS)
        ]
        rows.append(
            Row(
                int(rec["point"]),
                params,
                status,
                arch_id=rec.get("arch_id") or None,
                pipeline_id=rec.get("pipeline_id") or None,
                metrics={c: _float(rec[c]) for c in metric_cols},
                curve=curve,
                steps=_int(rec.get("steps")),
                train_seconds=_float(rec.get("train_seconds")),
                trial=_int(rec.get("trial")),
                failure_reason=rec.get("failure_reason") or None,
            )
        )
    table = Table(
        space,
        tuple(rows),
        str(path),
        steps=_int(meta.get("steps")),
        eval_every=_int(meta.get("eval_every")),
        meta={k: meta[k] for k in ("study", "study_space_hash") if k in meta},
    )
    size = math.prod(len(v) for v in grid.values())
    if len(table.by_key()) != size:
        raise ConfigError(
            f"holds {len(table.by_key())} distinct points, the space has {size}; an exhaustive "
            "table needs every point once",
            file=path,
        )
    return table


def space_from_raw(raw: dict[str, Any], *, where: str, overrides: dict[str, Any] | None = None) -> Space:
    """The space's parameters, objectives and sampler settings from its YAML mapping, without loading
    its pipeline or models (a table stays replayable when those files change)."""
    raw = json.loads(json.dumps(raw))  # a private copy
    for dotted, value in (overrides or {}).items():
        if dotted not in _REPLAY_KEYS:
            raise ConfigError(
                f"a replay can only change {', '.join(_REPLAY_KEYS)} (the table fixes the rest)", key=f"--set {dotted}"
            )
        set_dotted(raw, dotted, value)
    try:
        cfg, params = parse_space(raw)
    except ConfigError as exc:
        raise exc.within(file=where) from None
    hashed = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("budget", "resources", "concurrency", "storage", "save_weights", "description", "sampler")
    }
    return Space(cfg, tuple(params), None, None, stable_id(hashed, 16), raw=raw)


def _grid_or_refuse(space: Space, where: str) -> dict[str, list[Any]]:
    grid = space.grid()
    if grid is None or any(p.when for p in space.sampled):
        raise ConfigError(
            f"space {space.name!r} is not finite (a continuous or conditional parameter); "
            "an exhaustive table needs a grid",
            file=where,
        )
    return grid


# -- replay ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One simulated sweep: after each trained trial, its cost so far and the hypervolume ratio."""

    sampler: str
    seed: int
    ratios: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    steps: list[int] = dataclasses.field(default_factory=list)
    found: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"ok": 0, "failed": 0, "pruned": 0, "infeasible": 0, "copies": 0}
    )
    stop_reason: str | None = None
    start_ratio: float = 0.0
    """Hypervolume ratio before any training: that of the imported trials (warm start), else 0."""
    trained_rows: list[Row] = dataclasses.field(default_factory=list)
    """The rows trained ok, in order (what a later sweep can import)."""

    def trials_to(self, target: float) -> int | None:
        """Trained trials of this run until the ratio reaches `target` (0 if the imports reach it)."""
        if self.start_ratio >= target - 1e-12:
            return 0
        return next((i + 1 for i, r in enumerate(self.ratios) if r >= target - 1e-12), None)

    def seconds_to(self, target: float) -> float | None:
        n = self.trials_to(target)
        return self.seconds[n - 1] if n is not None else None


class _Front:
    """Hypervolume ratio of a growing set of points, normalised like the table's front."""

    def __init__(self, table: Table):
        cand = table.candidates()
        if not cand:
            raise ConfigError("has no fully trained point (status ok); nothing to compare against", file=table.source)
        pts = to_minimisation(table.objective_values(cand), table.space.objective_directions)
        self.lo = pts.min(axis=0)
        self.span = np.where(pts.max(axis=0) > self.lo, pts.max(axis=0) - self.lo, 1.0)
        self.ref = np.full(pts.shape[1], 1.0 + REFERENCE_MARGIN)
        self.directions = table.space.objective_directions
        self.full = hypervolume((pts - self.lo) / self.span, self.ref)
        self.points: list[np.ndarray] = []

    def add(self, values: Sequence[float]) -> None:
        pt = to_minimisation(np.array([values], dtype=float), self.directions)[0]
        self.points.append((pt - self.lo) / self.span)

    def ratio(self) -> float:
        if not self.points or self.full <= 0:
            return 0.0
        return hypervolume(np.array(self.points), self.ref) / self.full


def simulate(
    table: Table,
    sampler: str,
    *,
    trials: int,
    seed: int,
    scheduler: str = "none",
    grace_period: int | None = None,
    reduction_factor: float | None = None,
    imported: Sequence[Row] = (),
) -> Run:
    """One replayed sweep of `trials` trained trials (see the module docstring). `imported`: rows
    trained by another sweep, added first as the warm start adds them (COMPLETE, ``imported_from``,
    the space's distributions; a re-proposal is a copy; not counted as trained trials here)."""
    import optuna

    from radio_nas.search.study import make_sampler

    space = table.space
    cfg = space.config
    sampler_cfg = dataclasses.replace(cfg.sampler, name=sampler, seed=seed)  # type: ignore[arg-type]
    sim_space = dataclasses.replace(space, config=dataclasses.replace(cfg, sampler=sampler_cfg))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    directions: list[Any] = list(space.objective_directions)
    study = optuna.create_study(directions=directions, sampler=make_sampler(sim_space))
    State = optuna.trial.TrialState
    by_key = table.by_key()
    run, front = Run(sampler, seed), _Front(table)
    trained: dict[tuple[str, str], tuple[int, Row]] = {}  # variant -> (trial number, row) trained ok
    cost, steps, streak = 0.0, 0, 0
    sh = _scheduler(table, scheduler, grace_period, reduction_factor)
    cost_names = _cost_names(space) if sh is not None else []
    grid_size = math.prod(len(v) for v in (space.grid() or {}).values())

    limits = constraint_limits(cfg.constraints)

    def tell(trial: Any, status: str, state: Any, values: list[float] | None = None, /, **attrs: Any) -> None:
        """As the sweep's searcher tells it: the record's fields, and constraint values from the
        measured costs (none measured: violated) so constrained samplers see what a real sweep shows."""
        costs = {k: attrs.get(k) for k in ("params", "gmacs", "latency_ms")}
        renamed = {"params": "n_params", "failure_reason": "reason"}  # attribute names -> record fields
        record = {renamed.get(k, k): v for k, v in attrs.items()}
        write_trial(trial, status=status, **record)
        for key, value in constraint_values(costs, limits).items():
            trial.set_constraint(key, value)
        _tell(study, trial, state, values)

    for row in imported:
        _import_row(study, space, row, limits)
        trained[row.variant] = (len(study.trials) - 1, row)  # type: ignore[index]  # imported rows are trained
        front.add(_objectives(space, row))
    run.start_ratio = front.ratio()

    while len(run.ratios) < trials:
        if sampler == "grid" and _grid_done(study, grid_size):
            run.stop_reason = "every point of the design has been tried"
            break
        if streak >= cfg.budget.max_infeasible:
            run.stop_reason = f"{streak} infeasible or already-trained variants in a row (budget.max_infeasible)"
            break
        trial = study.ask()
        space.sample(trial)  # the space's own sampling code: conditions, encodings
        row = by_key[table.key(trial.params)]
        measured = {k: row.metrics.get(k) for k in ("params", "gmacs", "latency_ms")}
        if row.variant is None:  # the model rejected it: never measured
            tell(trial, "infeasible", State.PRUNED, arch_id=None, failure_reason=row.failure_reason)
            run.counts["infeasible"] += 1
            streak += 1
            continue
        if row.variant in trained:
            number, original = trained[row.variant]
            tell(
                trial,
                "ok",
                State.COMPLETE,
                _objectives(space, original),
                duplicate_of=number,
                arch_id=row.arch_id,
                **measured,
            )
            run.counts["copies"] += 1
            streak += 1
            _queue_untried(study, sim_space, sampler_cfg.seed, trial.number)
            continue
        if row.status == "infeasible":  # measured, then a constraint broke: COMPLETE with stand-ins, as the sweep
            values = stand_in_values(cfg.objectives, measured, read_trials(study))
            reason = row.failure_reason
            tell(trial, "infeasible", State.COMPLETE, values, arch_id=row.arch_id, failure_reason=reason, **measured)
            run.counts["infeasible"] += 1
            streak += 1
            continue
        streak = 0
        stop = _stop_step(sh, trial.number, row, cost_names) if sh is not None else None
        if stop is not None:
            cost += row.seconds_at(stop)
            steps += stop
            _record_curve(study, trial, row, stop)
            tell(
                trial,
                "pruned",
                State.PRUNED,
                arch_id=row.arch_id,
                failure_reason=f"stopped by moasha at step {stop}",
                **measured,
            )
            run.counts["pruned"] += 1
        else:
            cost += row.train_seconds or 0.0
            steps += row.steps or 0
            _record_curve(study, trial, row, None)
            if row.status == "ok" and _finite_objectives(space, row):
                values = _objectives(space, row)
                tell(trial, "ok", State.COMPLETE, values, arch_id=row.arch_id, **measured)
                trained[row.variant] = (trial.number, row)
                run.trained_rows.append(row)
                front.add(values)
                run.found.add(row.variant)
                run.counts["ok"] += 1
            else:
                tell(trial, "failed", State.FAIL, arch_id=row.arch_id, failure_reason=row.failure_reason, **measured)
                run.counts["failed"] += 1
        run.ratios.append(front.ratio())
        run.seconds.append(cost)
        run.steps.append(steps)
    return run


def _import_row(study: Any, space: Space, row: Row, limits: dict[str, float | None]) -> None:
    """A row trained elsewhere, added as :func:`radio_nas.search.carry.import_trials` adds a trial."""
    import optuna

    from radio_nas.search.carry import distributions_of

    params = dict(row.params)
    costs = {k: row.metrics.get(k) for k in ("params", "gmacs", "latency_ms")}
    attrs = trial_attrs(
        status="ok",
        arch_id=row.arch_id,
        n_params=costs["params"],
        gmacs=costs["gmacs"],
        latency_ms=costs["latency_ms"],
        imported_from=f"row {row.point}",
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            values=_objectives(space, row),
            params=params,
            distributions=distributions_of(space, params),
            user_attrs=attrs,
            system_attrs={f"constraints:{k}": v for k, v in constraint_values(costs, limits).items()},
        )
    )


def warm_start_replay(
    table: Table,
    samplers: Sequence[str],
    *,
    source_trials: int,
    trials: int,
    repeats: int = 10,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per sampler and repeat r: a cold sweep of `trials` (seed `seed+r`), a `source_trials` sweep
    (seed `seed+1000+r`), and a sweep of seed `seed+r` warm-started from the source's trained trials.
    Counts the new trainings each needs to reach the cold sweep's final hypervolume ratio."""
    if source_trials < 1 or trials < 1 or repeats < 1:
        raise ConfigError("expected integers >= 1", key="--warm-start")
    out: dict[str, Any] = {
        "table": {"source": table.source, "space": table.space.name, "points": len(table.rows)},
        "source_trials": source_trials,
        "trials": trials,
        "repeats": repeats,
        "seed": seed,
        "samplers": {},
    }
    for name in samplers:
        if name not in SAMPLERS or name == "grid":
            raise ConfigError(f"expected some of tpe, nsga2, random, gp; got {name!r}", key="--samplers")
        started = time.perf_counter()
        rows: list[dict[str, Any]] = []
        for r in range(repeats):
            with _one_thread(name == "gp"):
                cold = simulate(table, name, trials=trials, seed=seed + r)
                src = simulate(table, name, trials=source_trials, seed=seed + 1000 + r)
                warm = simulate(table, name, trials=trials, seed=seed + r, imported=src.trained_rows)
            target = cold.ratios[-1] if cold.ratios else 0.0
            warm_new = warm.trials_to(target)
            rows.append(
                {
                    "seed": seed + r,
                    "cold_hv": target,
                    "cold_new_to_reach": cold.trials_to(target),
                    "imported": len(src.trained_rows),
                    "imported_hv": warm.start_ratio,
                    "warm_new_to_reach": warm.trials_to(target),
                    "warm_hv": warm.ratios[-1] if warm.ratios else warm.start_ratio,
                    "warm_copies": warm.counts["copies"],
                    "warm_total_trainings": len(src.ratios) + warm_new if warm_new is not None else None,
                    "cold_to_95": cold.trials_to(TARGET_RATIO),
                    "warm_new_to_95": warm.trials_to(TARGET_RATIO),
                }
            )
        s: dict[str, Any] = {"runs": rows, "replay_s": time.perf_counter() - started}
        for key in (
            "cold_hv",
            "cold_new_to_reach",
            "imported",
            "imported_hv",
            "warm_new_to_reach",
            "warm_total_trainings",
            "warm_hv",
            "cold_to_95",
            "warm_new_to_95",
        ):
            vals = [float(x[key]) if x[key] is not None else math.inf for x in rows]
            s[f"{key}_median"], s[f"{key}_iqr"] = _median_iqr(vals)
        s["warm_reached"] = sum(x["warm_new_to_reach"] is not None for x in rows)
        s["warm_fewer"] = sum(
            x["warm_new_to_reach"] is not None and x["warm_new_to_reach"] < (x["cold_new_to_reach"] or math.inf)
            for x in rows
        )
        out["samplers"][name] = s
        if progress is not None:
            progress(f"{name}: {repeats} warm-start comparisons in {s['replay_s']:.1f}s")
    return out


def format_warm_start(out: dict[str, Any]) -> str:
    """The warm-start comparison as a Markdown table."""
    from radio_nas._util import markdown_table

    n, k = out["trials"], out["source_trials"]
    head = (
        f"Warm start on {out['table']['source']} ({out['table']['points']} points): per repeat a cold sweep of {n} "
        f"trained trials, and a sweep of the same seed warm-started from a {k}-trial sweep of another seed; "
        f"new trainings until the cold sweep's final hypervolume ratio is reached. {out['repeats']} repeats, "
        "median [IQR]."
    )
    rows = []
    for name, s in out["samplers"].items():
        rows.append(
            {
                "sampler": name,
                f"cold HV after {n}": _mi(s["cold_hv_median"], s["cold_hv_iqr"], ".3f"),
                "cold: trainings to it": _mi(s["cold_new_to_reach_median"], s["cold_new_to_reach_iqr"], ".0f"),
                "imported": _mi(s["imported_median"], s["imported_iqr"], ".0f"),
                "HV of the imports": _mi(s["imported_hv_median"], s["imported_hv_iqr"], ".3f"),
                "warm: new trainings to it": _mi(
                    s["warm_new_to_reach_median"], s["warm_new_to_reach_iqr"], ".0f", missing=f">{n}"
                ),
                "warm reached": f"{s['warm_reached']}/{out['repeats']}",
                f"warm: {k} + new": _mi(
                    s["warm_total_trainings_median"], s["warm_total_trainings_iqr"], ".0f", missing="-"
                ),
                "warm fewer than cold": f"{s['warm_fewer']}/{out['repeats']}",
                f"warm HV after {n} new": _mi(s["warm_hv_median"], s["warm_hv_iqr"], ".3f"),
                f"cold: trainings to {TARGET_RATIO:.0%}": _mi(
                    s["cold_to_95_median"], s["cold_to_95_iqr"], ".0f", missing=f">{n}"
                ),
                f"warm: new trainings to {TARGET_RATIO:.0%}": _mi(
                    s["warm_new_to_95_median"], s["warm_new_to_95_iqr"], ".0f", missing=f">{n}"
                ),
            }
        )
    return head + "\n" + markdown_table(rows)


def _record_curve(study: Any, trial: Any, row: Row, stop: int | None) -> None:
    """The curve up to `stop` (all of it if None) as intermediate values, through the storage (Optuna's
    ``Trial.report`` refuses multi-objective studies). A pruned trial of a multi-objective study keeps
    it as the user attr ``curve`` instead: Optuna 5.0's TPESampler raises on the next ask when a
    PRUNED trial of such a study has intermediate values (``study.direction`` in _get_pruned_trial_score).
    """
    points = [p for p in row.curve if stop is None or p.step <= stop]
    if stop is not None and len(study.directions) > 1:
        trial.set_user_attr(
            "curve", [{"step": p.step, "fidelity": p.fidelity, "seconds": row.seconds_at(p.step)} for p in points]
        )
        return
    for p in points:
        study._storage.set_trial_intermediate_value(trial._trial_id, p.step, p.fidelity)


def _tell(study: Any, trial: Any, state: Any, values: list[float] | None) -> None:
    study.tell(trial, values=values, state=state)


def _grid_done(study: Any, size: int) -> bool:
    import optuna

    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
    return len([t for t in trials if t.state != optuna.trial.TrialState.WAITING]) >= size and not waiting


def _queue_untried(study: Any, space: Space, seed: int | None, salt: int) -> None:
    """The searcher's rule after a copy: queue a random untried point (same RNG seeding)."""
    import optuna

    grid = space.grid()
    if not grid or space.config.sampler.name == "grid":
        return  # Optuna's GridSampler gives a queued trial's number no grid point: one would be missed
    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return
    tried = {tuple(sorted(t.params.items())) for t in trials if t.params}
    rng = random.Random(f"{seed}-{salt}")
    for _ in range(200):
        candidate = {name: rng.choice(values) for name, values in grid.items()}
        if tuple(sorted(candidate.items())) not in tried:
            study.enqueue_trial(candidate)
            return


def _scheduler(table: Table, name: str, grace_period: int | None, reduction_factor: float | None) -> Any:
    if name in ("none", "", None):
        return None
    if name != "moasha":
        raise ConfigError(f"unknown scheduler {name!r}; a replay supports none and moasha", key="--scheduler")
    from radio_nas.search.mo_scheduler import MOSuccessiveHalving, scheduler_objectives

    _, directions = scheduler_objectives(table.space)
    curve_steps = sorted({p.step for r in table.rows for p in r.curve})
    steps = table.steps or (curve_steps[-1] if curve_steps else None)
    if not steps:
        raise ConfigError(
            "has no learning curves or step counts; a scheduler cannot be replayed on it", file=table.source
        )
    sched = table.space.config.scheduler
    grace = grace_period or sched.grace_period or table.eval_every or (curve_steps[0] if curve_steps else 1)
    return MOSuccessiveHalving(
        directions,
        grace_period=int(grace),
        reduction_factor=reduction_factor or sched.reduction_factor,
        max_t=max(steps, grace),
    )


def _cost_names(space: Space) -> list[str]:
    from radio_nas.search.mo_scheduler import scheduler_objectives

    return scheduler_objectives(space)[0]


def _stop_step(sh: Any, trial_id: int, row: Row, cost_names: list[str]) -> int | None:
    """The step at which the scheduler stops this trial's curve, or None if it runs to the end.
    Like the trainable, the final step is never reported as intermediate."""
    costs = [row.metrics.get(n) for n in cost_names]
    if any(c is None for c in costs):
        return None
    for p in row.curve:
        if row.steps is not None and p.step >= row.steps:
            break
        if not sh.on_result(trial_id, step=p.step, value=p.fidelity, costs=[float(c) for c in costs if c is not None]):
            return p.step
    return None


def _objectives(space: Space, row: Row) -> list[float]:
    return [float(row.metrics[n]) for n in space.objective_names]  # type: ignore[arg-type]


def _finite_objectives(space: Space, row: Row) -> bool:
    vals = [row.metrics.get(n) for n in space.objective_names]
    return all(v is not None and math.isfinite(v) for v in vals)


def replay(
    table: Table,
    samplers: Sequence[str],
    *,
    trials: int,
    repeats: int = 10,
    seed: int = 0,
    scheduler: str = "none",
    grace_period: int | None = None,
    reduction_factor: float | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Replay each sampler `repeats` times (sampler seeds seed, seed+1, ...) and summarise; `jobs` > 1
    spreads the repeats over that many processes (same results: every replay is seeded on its own)."""
    if jobs < 1:
        raise ConfigError(f"expected an integer >= 1, got {jobs}", key="--jobs")
    if trials < 1:
        raise ConfigError(f"expected an integer >= 1, got {trials}", key="--trials")
    if repeats < 1:
        raise ConfigError(f"expected an integer >= 1, got {repeats}", key="--repeats")
    for name in samplers:
        if name not in SAMPLERS:
            raise ConfigError(f"unknown sampler {name!r}; expected some of {', '.join(SAMPLERS)}", key="--samplers")
    pareto = table.pareto_variants()
    out: dict[str, Any] = {
        "table": {
            "source": table.source,
            "space": table.space.name,
            "points": len(table.rows),
            "trainable_variants": len({r.variant for r in table.rows if r.status != "infeasible" and r.variant}),
            "ok": len(table.candidates()),
            "pareto_size": len(pareto),
            "objectives": [f"{n} ({d})" for n, d in zip(table.space.objective_names, table.space.objective_directions)],
        },
        "trials": trials,
        "repeats": repeats,
        "seed": seed,
        "scheduler": scheduler,
        "target_ratio": TARGET_RATIO,
        "samplers": {},
        "runs": {},
    }
    kwargs = {
        "trials": trials,
        "scheduler": scheduler,
        "grace_period": grace_period,
        "reduction_factor": reduction_factor,
    }
    pool = None
    if jobs > 1:
        import concurrent.futures
        import multiprocessing

        # spawn, not fork: the parent may hold torch/OpenMP threads (GP) that a fork would copy mid-flight
        pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        for name in samplers:
            started = time.perf_counter()
            tasks = [(table, name, seed + i, kwargs) for i in range(repeats)]
            runs = list(pool.map(_simulate_task, tasks)) if pool is not None else [_simulate_task(t) for t in tasks]
            _summary(out, name, runs, pareto, trials, started, progress)
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def _simulate_task(task: tuple[Table, str, int, dict[str, Any]]) -> Run:
    table, name, seed, kwargs = task
    with _one_thread(name == "gp"):
        return simulate(table, name, seed=seed, **kwargs)


def _summary(
    out: dict[str, Any],
    name: str,
    runs: list[Run],
    pareto: set[tuple[str, str]],
    trials: int,
    started: float,
    progress: Callable[[str], None] | None,
) -> None:
    out["samplers"][name] = summarise(runs, pareto, trials)
    out["samplers"][name]["replay_s"] = time.perf_counter() - started
    out["runs"][name] = [
        {
            "seed": r.seed,
            "hv_ratio": r.ratios,
            "seconds": r.seconds,
            "steps": r.steps,
            "counts": r.counts,
            "stop_reason": r.stop_reason,
        }
        for r in runs
    ]
    if progress is not None:
        progress(f"{name}: {len(runs)} replays in {out['samplers'][name]['replay_s']:.1f}s")


@contextlib.contextmanager
def _one_thread(active: bool) -> Iterator[None]:
    """GPSampler's acquisition search is many tiny torch ops: one thread is ~7x faster than two on
    a busy 2-core machine (measured: 14 GP proposals 33 s -> 4.6 s)."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def summarise(runs: Sequence[Run], pareto: set[tuple[str, str]], trials: int) -> dict[str, Any]:
    """Median and IQR ([q1, q3]) over the repeats of every figure the replay reports."""
    final = [r.ratios[-1] if r.ratios else 0.0 for r in runs]
    to95 = [r.trials_to(TARGET_RATIO) for r in runs]
    cost95 = [r.seconds_to(TARGET_RATIO) for r in runs]
    share = [len(r.found & pareto) / len(pareto) if pareto else 1.0 for r in runs]
    seconds = [r.seconds[-1] if r.seconds else 0.0 for r in runs]
    steps = [float(r.steps[-1]) if r.steps else 0.0 for r in runs]
    trained = [float(len(r.ratios)) for r in runs]
    out: dict[str, Any] = {}
    for key, vals in (
        ("hv_ratio", final),
        ("pareto_share", share),
        ("train_seconds", seconds),
        ("train_steps", steps),
        ("trained", trained),
    ):
        out[f"{key}_median"], out[f"{key}_iqr"] = _median_iqr(vals)
    # "not reached" counts as infinitely late, so a median over repeats that mostly miss is None
    reach = [float(v) if v is not None else math.inf for v in to95]
    out["trials_to_95_median"], out["trials_to_95_iqr"] = _median_iqr(reach)
    out["seconds_to_95_median"], out["seconds_to_95_iqr"] = _median_iqr(
        [v if v is not None else math.inf for v in cost95]
    )
    out["reached_95"] = sum(v is not None for v in to95)
    out["counts_median"] = {k: float(np.median([r.counts[k] for r in runs])) for k in runs[0].counts} if runs else {}
    return out


def _median_iqr(values: Sequence[float]) -> tuple[float | None, list[float | None]]:
    arr = np.array(values, dtype=float)
    if arr.size == 0:
        return None, [None, None]
    q1, med, q3 = (
        np.percentile(arr, [25, 50, 75], method="linear")
        if np.isfinite(arr).all()
        else np.percentile(arr, [25, 50, 75], method="lower")
    )
    return _plain(med), [_plain(q1), _plain(q3)]


def _plain(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# -- output ---------------------------------------------------------------------------------------------


def format_replay(out: dict[str, Any]) -> str:
    """The sampler table (Markdown) with a line on what was replayed."""
    from radio_nas._util import markdown_table as format_table

    t = out["table"]
    head = (
        f"Replay of {t['source']} (space {t['space']}: {t['points']} points, {t['ok']} fully trained, "
        f"exhaustive Pareto set {t['pareto_size']}); {out['trials']} trained trials per sweep, "
        f"{out['repeats']} repeats (seeds {out['seed']}..{out['seed'] + out['repeats'] - 1}), scheduler "
        f"{out['scheduler']}. Median [IQR]."
    )
    rows = []
    for name, s in out["samplers"].items():
        rows.append(
            {
                "sampler": name,
                "HV ratio": _mi(s["hv_ratio_median"], s["hv_ratio_iqr"], ".3f"),
                f"trials to {TARGET_RATIO:.0%}": _mi(
                    s["trials_to_95_median"], s["trials_to_95_iqr"], ".0f", missing=f">{out['trials']}"
                ),
                f"reached {TARGET_RATIO:.0%}": f"{s['reached_95']}/{out['repeats']}",
                "Pareto set found": _mi(s["pareto_share_median"], s["pareto_share_iqr"], ".0%"),
                "train s": _mi(s["train_seconds_median"], s["train_seconds_iqr"], ".0f"),
                f"train s to {TARGET_RATIO:.0%}": _mi(
                    s["seconds_to_95_median"], s["seconds_to_95_iqr"], ".0f", missing="-"
                ),
                "pruned": f"{s['counts_median'].get('pruned', 0):g}",
                "copies": f"{s['counts_median'].get('copies', 0):g}",
            }
        )
    return head + "\n" + format_table(rows)


def _mi(med: float | None, iqr: list[float | None], fmt: str, missing: str = "-") -> str:
    def f(v: float | None) -> str:
        return missing if v is None else format(v, fmt)

    return f"{f(med)} [{f(iqr[0])}, {f(iqr[1])}]"


def plot_replay(out: dict[str, Any], path: str | Path) -> Path:
    """PNG: median HV ratio (IQR band) against trained trials and against training seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    max_cost = max((max(r["seconds"], default=0.0) for runs in out["runs"].values() for r in runs), default=0.0)
    grid = np.linspace(0.0, max_cost or 1.0, 200)
    for name, runs in out["runs"].items():
        n = out["trials"]
        by_trial = np.array([_pad(r["hv_ratio"], n) for r in runs])
        x = np.arange(1, n + 1)
        q1, med, q3 = np.percentile(by_trial, [25, 50, 75], axis=0)
        (line,) = ax1.plot(x, med, label=name)
        ax1.fill_between(x, q1, q3, color=line.get_color(), alpha=0.2)
        by_cost = np.array([_at_cost(r["seconds"], r["hv_ratio"], grid) for r in runs])
        q1, med, q3 = np.percentile(by_cost, [25, 50, 75], axis=0)
        ax2.plot(grid / 60.0, med, color=line.get_color(), label=name)
        ax2.fill_between(grid / 60.0, q1, q3, color=line.get_color(), alpha=0.2)
    for ax, label in ((ax1, "trained trials"), (ax2, "simulated training time (min)")):
        ax.axhline(TARGET_RATIO, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(label)
        ax.set_ylabel("hypervolume / exhaustive")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    t = out["table"]
    fig.suptitle(
        f"Replay on {t['space']} ({t['points']} points): median and IQR over {out['repeats']} seeds, "
        f"scheduler {out['scheduler']}"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pad(values: Sequence[float], n: int) -> list[float]:
    """A run that stopped early (grid done, too many infeasible) keeps its last ratio."""
    vals = list(values)[:n]
    return vals + [vals[-1] if vals else 0.0] * (n - len(vals))


def _at_cost(seconds: Sequence[float], ratios: Sequence[float], grid: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(np.asarray(seconds, dtype=float), grid, side="right") - 1
    vals = np.asarray(ratios, dtype=float)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)] if len(vals) else 0.0, 0.0)


# -- small helpers --------------------------------------------------------------------------------------


def _param_cell(value: Any) -> str:
    decoded = decode_choice(value)
    return decoded if isinstance(decoded, str) else json.dumps(decoded)


def _parse_param_cell(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    f = _float(value)
    return int(f) if f is not None else None


def _num(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")
