"""Exhaustive tables of a finite space: one row per point, from a finished study or its CSV.

    from radio_nas.simulate import load_table, write_table
    table = load_table("results/mra-grid")          # a finished exhaustive study, or its CSV
    write_table(table, "benchmarks/mra_exhaustive.csv")

An **exhaustive table** holds one row per point of a finite space (every combination of the sampled
parameters' values): its status (``ok``, ``infeasible``, ``failed``), measured costs, objective
metrics and learning curve. It comes from a study in which every point has a finished trial
(:mod:`radio_nas.simulate.exhaustive` runs that grid sweep); a study missing points is refused.

A row's ``variant_id`` is the model as built at the pipeline's resolution (``window_sizes: auto`` and
the windows it resolves to are one variant, as the sweep treats them:
:func:`radio_nas.search.space.variant_key`); a table written before that column existed falls back to
the arch id.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radio_nas._config import ConfigError, load_yaml, set_dotted, stable_id
from radio_nas.search.space import Space, decode_choice, encode_choice, parse_space, recorded_pipeline_id
from radio_nas.study.pareto import pareto_mask
from radio_nas.study.record import CurvePoint, StudyRecord, TrialRecord

TABLE_FORMAT = "radio-nas-exhaustive/1"
STATUSES = ("ok", "infeasible", "failed")
SAMPLERS = ("tpe", "nsga2", "random", "gp", "grid")
BASE_COLUMNS = (
    "point",
    "trial",
    "arch_id",
    "variant_id",
    "pipeline_id",
    "status",
    "params",
    "gmacs",
    "latency_ms",
    "fidelity",
)
_ID_COLUMNS = ("point", "trial", "arch_id", "variant_id", "pipeline_id", "status")
TAIL_COLUMNS = ("steps", "train_seconds", "curve", "failure_reason")
_REPLAY_KEYS = (
    "sampler.n_startup_trials",
    "scheduler.grace_period",
    "scheduler.reduction_factor",
    "budget.max_infeasible",
)
"""Space keys a replay may change (--set): they do not change what the table's points are."""


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
    variant_id: str | None = None
    """The model as built at the pipeline's resolution (see the module docstring); None: the arch id."""

    @property
    def variant(self) -> tuple[str, str] | None:
        """What the sweep treats as "the same variant" (variant id, pipeline id); None if rejected."""
        model = self.variant_id or self.arch_id
        return (model, self.pipeline_id) if model and self.pipeline_id else None

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
        pipeline_id=recorded_pipeline_id(pipeline) if pipeline is not None else None,
        metrics=metrics,
        curve=curve,
        steps=steps if status != "infeasible" else None,
        train_seconds=seconds if status != "infeasible" else None,
        trial=int(r.duplicate_of) if r.duplicate_of is not None else t.number,
        failure_reason=r.reason,
        variant_id=_variant_id(r.arch, pipeline, r.arch_id),
    )


def _variant_id(arch: Any, pipeline: Any, fallback: str | None) -> str | None:
    """The id of the model `arch` builds at the pipeline's resolution (the first half of
    :func:`radio_nas.search.space.variant_key`), else `fallback` (a record this code cannot rebuild)."""
    from radio_nas._util import parse_resolution
    from radio_nas.models import resolve_config

    if not arch or not pipeline or fallback is None:
        return fallback
    try:
        cfg = resolve_config(dict(arch))
        built_at = getattr(cfg, "built_at", None)
        return str((built_at(*parse_resolution(pipeline.get("resolution"))) if callable(built_at) else cfg).id)
    except (ConfigError, ValueError, TypeError):
        return fallback


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
            "variant_id": r.variant_id,
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
    """A table written by :func:`write_table`, checked cell by cell (numbers finite, every row as long
    as the header, one row per point of its own space's grid); ConfigError naming the line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise ConfigError("is not a text file; expected a CSV exhaustive table", file=path)
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
    reader = csv.reader(io.StringIO(body))
    try:
        header = next(reader, [])
        records = [(reader.line_num + 1, cells) for cells in reader]  # + 1: the first line holds the meta
    except csv.Error as exc:
        raise ConfigError(f"line {reader.line_num + 1}: not valid CSV ({exc})", file=path) from None
    missing_cols = [c for c in ("point", *names, "status", "curve") if c not in header]
    if missing_cols:
        raise ConfigError(f"missing column {missing_cols[0]!r}", file=path)
    metric_cols = [c for c in header if c not in names and c not in (*_ID_COLUMNS, *TAIL_COLUMNS)]
    rows: dict[tuple[Any, ...], tuple[int, Row]] = {}
    points: dict[int, int] = {}  # point id -> its line
    for line, cells in records:
        where = f"line {line}"
        if not cells:
            continue  # a blank line
        if len(cells) != len(header):
            raise ConfigError(f"{len(cells)} cells, the header has {len(header)}", file=path, key=where)
        rec = dict(zip(header, cells))
        row = _row_from_cells(rec, names, grid, metric_cols, where, path)
        if row.point in points:
            raise ConfigError(f"point {row.point} again (first at line {points[row.point]})", file=path, key=where)
        points[row.point] = line
        key = tuple(row.params[n] for n in names)
        if key in rows:
            other, seen = rows[key]
            if dataclasses.replace(seen, point=row.point) != row:
                shown = ", ".join(f"{n}={rec[n]}" for n in names)
                raise ConfigError(
                    f"{shown} again, with other results than at line {other}; a table holds one row per point",
                    file=path,
                    key=where,
                )
            continue  # the same row twice
        rows[key] = (line, row)
    table = Table(
        space,
        tuple(r for _, r in rows.values()),
        str(path),
        steps=_meta_int(meta, "steps", path),
        eval_every=_meta_int(meta, "eval_every", path),
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


def _row_from_cells(
    rec: dict[str, str], names: list[str], grid: dict[str, list[Any]], metric_cols: list[str], where: str, path: Path
) -> Row:
    params = {}
    for n in names:
        value = encode_choice(_parse_param_cell(rec[n]))
        if value not in grid[n]:
            raise ConfigError(f"{n}={rec[n]!r} is not a value of the space ({grid[n]})", file=path, key=where)
        params[n] = value
    status = rec["status"]
    if status not in STATUSES:
        raise ConfigError(f"status {status!r}; expected one of {', '.join(STATUSES)}", file=path, key=where)

    def number(column: str, value: Any, whole: bool = False) -> float | None:
        if value is None or value == "":
            return None  # a missing value
        try:
            out = float(value)
        except (TypeError, ValueError):
            out = math.nan
        if not math.isfinite(out) or isinstance(value, bool) or (whole and out != int(out)):
            what = "an integer" if whole else "a finite number"
            raise ConfigError(f"{column}: expected {what}, got {value!r}", file=path, key=where) from None
        return out

    def integer(column: str, value: Any) -> int | None:
        out = number(column, value, whole=True)
        return None if out is None else int(out)

    point = integer("point", rec["point"])
    if point is None:
        raise ConfigError("point: expected an integer, got ''", file=path, key=where)
    try:
        recorded = json.loads(rec["curve"] or "[]")
        if not isinstance(recorded, list) or not all(isinstance(p, dict) for p in recorded):
            raise ValueError
    except ValueError:
        raise ConfigError("curve: expected JSON [{step, fidelity, seconds}]", file=path, key=where) from None
    curve = []
    for p in recorded:
        step, fidelity = integer("curve step", p.get("step")), number("curve fidelity", p.get("fidelity"))
        if step is None or fidelity is None:
            raise ConfigError("curve: expected JSON [{step, fidelity, seconds}]", file=path, key=where)
        curve.append(CurvePoint(step, fidelity, number("curve seconds", p.get("seconds"))))
    return Row(
        point,
        params,
        status,
        arch_id=rec.get("arch_id") or None,
        pipeline_id=rec.get("pipeline_id") or None,
        metrics={c: number(c, rec[c]) for c in metric_cols},
        curve=tuple(curve),
        steps=integer("steps", rec.get("steps")),
        train_seconds=number("train_seconds", rec.get("train_seconds")),
        trial=integer("trial", rec.get("trial")),
        failure_reason=rec.get("failure_reason") or None,
        variant_id=rec.get("variant_id") or None,
    )


def _meta_int(meta: dict[str, Any], key: str, path: Path) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"expected an integer >= 1 or null, got {value!r}", file=path, key=f"line 1: {key}")
    return value


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


def _finite_objectives(space: Space, row: Row) -> bool:
    vals = [row.metrics.get(n) for n in space.objective_names]
    return all(v is not None and math.isfinite(v) for v in vals)


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
