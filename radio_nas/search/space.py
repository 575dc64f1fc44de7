"""Search-space files: what varies in a sweep, validated before anything runs.

    from radio_nas.search.space import load_space
    space = load_space("search_spaces/mra.yaml")          # ConfigError names file + key
    space.name, [p.name for p in space.params], space.objective_names
    values = space.sample(optuna_trial)                     # define-by-run, conditions honoured
    space.arch_config(values), space.pipeline_for(values)

A space says *what varies* (``parameters`` over ``arch.*`` and ``pipeline.*`` fields, in the grammar
of :mod:`radio_nas.search.grammar`); its ``pipeline`` says *how each trial is trained*. The keys are
documented in ``search_spaces/README.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from radio_nas._config import Config, ConfigError, load_yaml, set_dotted, stable_id
from radio_nas._shipped import find_space
from radio_nas.search.grammar import Choice, Fixed, FloatRange, IntRange, parse_param
from radio_nas.study.record import DEFAULT_OBJECTIVES, MEASURED_METRICS, TRIAL_METRICS, Objective

if TYPE_CHECKING:
    from radio_nas.distill.pipeline import PipelineConfig
    from radio_nas.models import ArchConfig

# Keys that do not change what a study searches: they may differ when a sweep is resumed.
# A parameter with more values than this is treated as continuous (never listed value by value).
MAX_LISTED_VALUES = 100_000
_RUN_ONLY_KEYS = ("budget", "resources", "concurrency", "storage", "save_weights", "description")


def parse_duration(value: Any, *, key: str) -> float | None:
    """Seconds from 90, '90s', '15m', '2h' or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", str(value))
        if not m:
            raise ConfigError(f"expected seconds or a duration like 90s, 15m, 2h; got {value!r}", key=key)
        seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"expected a positive, finite duration, got {value!r}", key=key)
    return seconds


@dataclasses.dataclass(frozen=True)
class PipelineRef(Config):
    path: str | None = None
    """Pipeline YAML; None means the embedded CPU default of radio_nas.distill."""
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Dotted pipeline keys set for every trial, e.g. {steps: 30}."""


@dataclasses.dataclass(frozen=True)
class Constraints(Config):
    max_params: float | None = None
    """Parameters, absolute count (e.g. 5e6)."""
    max_gmacs: float | None = None
    """GMACs of one forward at the pipeline's student resolution, batch 1."""
    max_latency_ms: float | None = None
    """Median latency in ms with the `latency` settings."""

    def validate(self) -> None:
        for name in ("max_params", "max_gmacs", "max_latency_ms"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"expected a positive number, got {value}", key=name)


@dataclasses.dataclass(frozen=True)
class LatencySettings(Config):
    device: Literal["cpu", "cuda"] = "cpu"
    batch_size: int = 1
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    runs: int = 20
    warmup: int = 3
    resolution: int | tuple[int, int] | None = None
    """None: the pipeline's student resolution."""
    threads: int | None = None
    """CPU: torch threads while timing (None: torch's default). 1 is far steadier on a shared box."""
    deploy: bool = True
    """Time the deployable graph (BatchNorm folded, position bias cached); false: the training graph."""

    def validate(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"expected an integer >= 1 or null, got {self.threads}", key="threads")
        for name in ("batch_size", "runs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"expected an integer >= 1, got {getattr(self, name)}", key=name)
        if self.warmup < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.warmup}", key="warmup")


@dataclasses.dataclass(frozen=True)
class Sampler(Config):
    name: Literal["tpe", "nsga2", "random", "grid", "gp"] = "tpe"
    seed: int | None = 0
    n_startup_trials: int | None = None
    """tpe/gp: random trials before the model kicks in; nsga2: population size."""


@dataclasses.dataclass(frozen=True)
class Budget(Config):
    trials: int | None = None
    """Trained trials (ok + failed + pruned) in the study; None: the grid size (grid / ablation) or 20."""
    wall_time: float | str | None = None
    """No new trial starts after this long (seconds, or '90s', '15m', '2h'); running ones finish."""
    max_infeasible: int = 200
    """Stop when this many sampled variants in a row break a constraint or are rejected."""

    def validate(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.trials}", key="trials")
        parse_duration(self.wall_time, key="wall_time")
        if self.max_infeasible < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.max_infeasible}", key="max_infeasible")


@dataclasses.dataclass(frozen=True)
class Resources(Config):
    cpu: float = 2
    gpu: float = 0

    def validate(self) -> None:
        if self.cpu < 0 or self.gpu < 0 or self.cpu + self.gpu <= 0:
            raise ConfigError(f"expected cpu >= 0, gpu >= 0, not both 0; got cpu={self.cpu} gpu={self.gpu}", key="cpu")


@dataclasses.dataclass(frozen=True)
class Scheduler(Config):
    name: Literal["none", "asha", "moasha"] = "none"
    """asha: one objective (fidelity); moasha: any objectives, ranked at each rung by non-dominated
    sorting of (fidelity so far, objectives known before training), see search/mo_scheduler.py."""
    grace_period: int | None = None
    """First rung, in steps (rungs at grace_period x reduction_factor^k); None: the pipeline's eval.every."""
    reduction_factor: float = 3.0

    def validate(self) -> None:
        if self.grace_period is not None and self.grace_period < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.grace_period}", key="grace_period")
        if not self.reduction_factor > 1 or not math.isfinite(self.reduction_factor):  # NaN compares false
            raise ConfigError(f"expected a finite number > 1, got {self.reduction_factor}", key="reduction_factor")


@dataclasses.dataclass(frozen=True)
class Ablation(Config):
    design: Literal["grid", "ofat"] = "ofat"
    """grid: every combination; ofat: one factor at a time around `base`."""
    seeds: int = 3
    """Repeats per point: pipeline seeds seed, seed+1, ... (seed of the pipeline)."""
    base: dict[str, Any] = dataclasses.field(default_factory=dict)
    """ofat: each factor's base level (default: its first choice)."""

    def validate(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.seeds}", key="seeds")


@dataclasses.dataclass(frozen=True)
class SpaceConfig(Config):
    """The YAML file as written (after shorthand expansion)."""

    name: str
    pipeline: PipelineRef = PipelineRef()
    base: dict[str, Any] = dataclasses.field(default_factory=lambda: {"preset": "t"})
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    constraints: Constraints = Constraints()
    latency: LatencySettings = LatencySettings()
    objectives: tuple[Objective, ...] = tuple(Objective(**o) for o in DEFAULT_OBJECTIVES)  # type: ignore[arg-type]  # literal directions
    sampler: Sampler = Sampler()
    budget: Budget = Budget()
    resources: Resources = Resources()
    concurrency: int = 1
    scheduler: Scheduler = Scheduler()
    storage: str | None = None
    save_weights: bool = True
    """Save each trial's student + adaptors (trials/<n>/student.safetensors) for export."""
    mode: Literal["search", "ablation"] = "search"
    ablation: Ablation = Ablation()
    description: str = ""

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][\w.\-]*", self.name):
            raise ConfigError(
                f"expected letters, digits, '.', '_' or '-' (a folder name), got {self.name!r}", key="name"
            )
        if self.concurrency < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.concurrency}", key="concurrency")
        if not self.objectives:
            raise ConfigError("expected at least one objective", key="objectives")
        seen = set()
        for i, obj in enumerate(self.objectives):
            if obj.metric in seen:
                raise ConfigError(f"metric {obj.metric!r} is listed twice", key=f"objectives[{i}].metric")
            seen.add(obj.metric)
            if obj.metric not in MEASURED_METRICS + TRIAL_METRICS and not obj.metric.startswith("fidelity/"):
                raise ConfigError(
                    f"unknown metric {obj.metric!r}; expected one of "
                    f"{', '.join(MEASURED_METRICS + TRIAL_METRICS)} or fidelity/<teacher>/<term>",
                    key=f"objectives[{i}].metric",
                )
        if self.scheduler.name == "asha" and len(self.objectives) != 1:
            raise ConfigError(
                f"ASHA needs exactly one objective, the space has {len(self.objectives)}", key="scheduler.name"
            )
        if self.scheduler.name == "asha" and self.objectives[0].metric != "fidelity":
            raise ConfigError(
                "ASHA stops trials on their intermediate fidelity; the objective must be fidelity", key="scheduler.name"
            )
        if self.scheduler.name == "moasha" and "fidelity" not in [o.metric for o in self.objectives]:
            raise ConfigError(
                "moasha stops trials on their intermediate fidelity; the objectives must include fidelity",
                key="scheduler.name",
            )


@dataclasses.dataclass(frozen=True)
class Param:
    """One entry of ``parameters``: a dotted target and its distribution (or fixed value)."""

    name: str
    dist: Any
    when: dict[str, tuple[Any, ...]]

    @property
    def target(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def field(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def fixed(self) -> bool:
        return isinstance(self.dist, Fixed)

    @property
    def count(self) -> int | None:
        """How many values this parameter can take (None: continuous), computed without listing them."""
        d = self.dist
        if isinstance(d, Choice):
            return len(d.values)
        if isinstance(d, IntRange) and not d.log:
            return (d.high - d.low) // d.step + 1
        if isinstance(d, FloatRange) and d.step is not None and not d.log:
            return round((d.high - d.low) / d.step) + 1
        return None

    @property
    def finite_values(self) -> tuple[Any, ...] | None:
        """Every value this parameter can take, when there are finitely many (and at most
        MAX_LISTED_VALUES: a range(0, 10**12) is searched like a continuous one, never listed)."""
        d, n = self.dist, self.count
        if n is None or n > MAX_LISTED_VALUES:
            return None
        if isinstance(d, Choice):
            return d.values
        if isinstance(d, IntRange):
            return tuple(range(d.low, d.high + 1, d.step))
        assert isinstance(d, FloatRange) and d.step is not None
        return tuple(d.low + k * d.step for k in range(n))

    @property
    def check_values(self) -> tuple[Any, ...]:
        """The values `--check` builds a config for: every choice, the ends of a range."""
        d = self.dist
        if isinstance(d, Fixed):
            return (d.value,)
        if isinstance(d, Choice):
            return d.values
        if isinstance(d, IntRange):
            return tuple(dict.fromkeys((d.low, d.low + (d.high - d.low) // d.step * d.step)))
        return tuple(dict.fromkeys((d.low, d.high)))

    def suggest(self, trial: Any) -> Any:
        d = self.dist
        if isinstance(d, Choice):
            encoded = [encode_choice(v) for v in d.values]
            return decode_choice(trial.suggest_categorical(self.name, encoded))
        if isinstance(d, IntRange):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)


def encode_choice(value: Any) -> Any:
    """Optuna's categorical values are scalars: lists and mappings travel as their JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def decode_choice(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def variant_key(arch_cfg: ArchConfig, pipeline: PipelineConfig) -> tuple[str, str]:
    """What a sweep treats as one variant (trained once, copied after): the model as built at the
    pipeline's resolution, and the pipeline (seed included). ``window_sizes: auto`` and the windows it
    resolves to there are one variant."""
    built_at = getattr(arch_cfg, "built_at", None)  # E-RADIO; a ViT has no windows to resolve
    model = built_at(*pipeline.size) if callable(built_at) else arch_cfg
    return model.id, pipeline.id


_RECORDED_IDS: dict[str, str] = {}


def recorded_pipeline_id(recorded: Any) -> str:
    """The id of a pipeline as a trial recorded it (its ``to_dict``), rebuilt so that fields added
    since, left at their default, do not change it (``late_fields``); a record this code cannot
    rebuild hashes as written."""
    from radio_nas.distill.pipeline import PipelineConfig

    written = stable_id(dict(recorded))
    if written not in _RECORDED_IDS:  # one rebuild per distinct pipeline: a study repeats a few
        try:
            _RECORDED_IDS[written] = PipelineConfig.from_dict(dict(recorded)).id
        except ConfigError:
            _RECORDED_IDS[written] = written
    return _RECORDED_IDS[written]


@dataclasses.dataclass(frozen=True)
class Space:
    """A loaded, validated search space."""

    config: SpaceConfig
    params: tuple[Param, ...]
    pipeline: Any
    """The resolved PipelineConfig (space overrides applied, parameters not)."""
    file: Path | None
    hash: str
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The mapping as read (with command-line overrides applied)."""
    overridden: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def objective_names(self) -> list[str]:
        return [o.metric for o in self.config.objectives]

    @property
    def objective_directions(self) -> list[str]:
        return [o.direction for o in self.config.objectives]

    @property
    def sampled(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.fixed)

    def sample(self, trial: Any) -> dict[str, Any]:
        """Values for every active parameter (fixed ones included), suggested on an Optuna trial."""
        values: dict[str, Any] = {}
        for p in self.params:
            if any(values.get(dep, _MISSING) not in allowed for dep, allowed in p.when.items()):
                continue
            values[p.name] = p.dist.value if p.fixed else p.suggest(trial)
        return values

    def arch_spec(self, values: dict[str, Any]) -> dict[str, Any]:
        spec = dict(self.config.base)
        spec.update({p.field: values[p.name] for p in self.params if p.target == "arch" and p.name in values})
        return spec

    def arch_config(self, values: dict[str, Any]) -> Any:
        """The validated architecture config of these values (ConfigError if the model rejects it)."""
        from radio_nas.models import resolve_config

        return resolve_config(self.arch_spec(values))

    def pipeline_overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        over = dict(self.config.pipeline.overrides)
        over.update({p.field: values[p.name] for p in self.params if p.target == "pipeline" and p.name in values})
        return over

    def pipeline_for(self, values: dict[str, Any]) -> Any:
        return _load_pipeline(self.config.pipeline.path, self.pipeline_overrides(values), self.file)

    def grid(self) -> dict[str, list[Any]] | None:
        """Encoded finite values per sampled parameter, or None if some parameter is continuous."""
        out = {}
        for p in self.sampled:
            vals = p.finite_values
            if vals is None:
                return None
            out[p.name] = [encode_choice(v) for v in vals]
        return out

    def grid_size(self) -> int | None:
        size = 1
        for p in self.sampled:
            if p.finite_values is None:
                return None
            size *= len(p.finite_values)
        return size


_MISSING = object()


def load_space(source: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None) -> Space:
    """Load and validate a search space; every error is one ConfigError naming file and key."""
    file = None if isinstance(source, dict) else find_space(source)  # a path, or a shipped name ("mra")
    try:
        raw = dict(source) if isinstance(source, dict) else load_yaml(cast(Path, file))
        for dotted, value in (overrides or {}).items():
            try:
                set_dotted(raw, dotted, value)
            except ConfigError as exc:
                raise ConfigError(exc.detail, key="--set") from None
        space = _build(raw, file)
        return dataclasses.replace(space, raw=raw, overridden=bool(overrides))
    except ConfigError as exc:
        raise exc.within(file=file) from None


def parse_space(raw: dict[str, Any], file: Path | None = None) -> tuple[SpaceConfig, list[Param]]:
    """The config and parameters of a space mapping (shorthands expanded); loads no pipeline or model."""
    raw = dict(raw)
    if isinstance(raw.get("pipeline"), str) or raw.get("pipeline") is None and "pipeline" in raw:
        raw["pipeline"] = {"path": raw["pipeline"]}
    if isinstance(raw.get("base"), str):
        raw["base"] = {"preset": raw["base"]}
    for key in ("sampler", "scheduler"):
        if isinstance(raw.get(key), str):
            raw[key] = {"name": raw[key]}
    if "name" not in raw and file is not None:
        raw["name"] = file.stem
    cfg = SpaceConfig.from_dict(raw)
    return cfg, _parse_params(cfg, file)


def _build(raw: dict[str, Any], file: Path | None) -> Space:
    cfg, params = parse_space(raw, file)
    pipeline = _load_pipeline(cfg.pipeline.path, cfg.pipeline.overrides, file, key="pipeline")
    _check_targets(cfg, params, pipeline, file)
    _check_every_value(cfg, params, pipeline, file)
    if cfg.sampler.name == "grid" or cfg.mode == "ablation":
        what = "the grid sampler" if cfg.mode == "search" else "ablation mode"
        for p in params:
            if not p.fixed and p.finite_values is None:
                many = f"; this one has {p.count:,} (at most {MAX_LISTED_VALUES:,})" if p.count else ""
                raise ConfigError(
                    f"{what} needs finitely many values (choice, range or a stepped interval)" + many,
                    key=f"parameters.{p.name}",
                )
            if p.when and not p.fixed:
                raise ConfigError(f"{what} does not support conditions", key=f"parameters.{p.name}.when")
    if cfg.mode == "ablation":
        _check_ablation(cfg, params)
        seeds = tuple(pipeline.seed + i for i in range(cfg.ablation.seeds))
        params.append(Param("pipeline.seed", Choice(seeds), {}))  # k repeats per point
    hashed = {k: v for k, v in cfg.to_dict().items() if k not in _RUN_ONLY_KEYS}
    hashed["pipeline_resolved"] = pipeline.to_dict() if hasattr(pipeline, "to_dict") else pipeline
    return Space(cfg, tuple(params), pipeline, file, stable_id(hashed, 16))


def _parse_params(cfg: SpaceConfig, file: Path | None) -> list[Param]:
    """Parse every entry, then order them so a conditioned parameter comes after what it depends on."""
    dists: dict[str, Any] = {}
    raw_when: dict[str, Any] = {}
    for name, spec in cfg.parameters.items():
        key = f"parameters.{name}"
        if not re.fullmatch(r"(arch|pipeline)\.[A-Za-z_][\w.]*", name):
            raise ConfigError(
                "expected a dotted target starting with 'arch.' or 'pipeline.' "
                "(e.g. arch.width, pipeline.balancing.method)",
                key=key,
            )
        if isinstance(spec, dict) and "_type" not in spec:
            extra = set(spec) - {"values", "when"}
            if extra or "values" not in spec:
                bad = min(extra) if extra else "values"
                raise ConfigError(
                    f"{'unknown key ' + repr(bad) if extra else 'missing values'}; a parameter "
                    "mapping takes 'values' (grammar, NNI or a fixed value) and optional 'when'",
                    key=key,
                )
            raw_when[name] = spec.get("when")
            dists[name] = parse_param(spec["values"], key=f"{key}.values")
        elif isinstance(spec, dict) and "when" in spec:  # NNI mapping with a condition
            spec = dict(spec)
            raw_when[name] = spec.pop("when")
            dists[name] = parse_param(spec, key=key)
        else:
            dists[name] = parse_param(spec, key=key)
    partial = {n: Param(n, d, {}) for n, d in dists.items()}
    whens = {n: _parse_when(w, partial, n, f"parameters.{n}.when") for n, w in raw_when.items()}
    ordered: list[Param] = []
    placed: set[str] = set()
    pending = list(dists)
    while pending:
        ready = [n for n in pending if set(whens.get(n, {})) <= placed]
        if not ready:
            raise ConfigError(
                f"conditions form a cycle among {', '.join(pending)}", key=f"parameters.{pending[0]}.when"
            )
        for n in ready:
            ordered.append(Param(n, dists[n], whens.get(n, {})))
            placed.add(n)
            pending.remove(n)
    return ordered


def _parse_when(when: Any, known: dict[str, Param], owner: str, key: str) -> dict[str, tuple[Any, ...]]:
    if not isinstance(when, dict) or not when:
        raise ConfigError("expected a mapping {parameter: value or [values]}", key=key)
    out = {}
    for dep, allowed in when.items():
        if dep not in known or dep == owner:
            others = [n for n in known if n != owner]
            raise ConfigError(
                f"condition on {dep!r}, which is not another parameter of this space; "
                f"expected one of: {', '.join(others) or '(none)'}",
                key=f"{key}.{dep}",
            )
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        possible = known[dep].finite_values if not known[dep].fixed else (known[dep].dist.value,)
        if possible is not None:
            for v in values:
                if v not in possible:
                    raise ConfigError(
                        f"{v!r} is not a value {dep} can take ({', '.join(map(repr, possible))})", key=f"{key}.{dep}"
                    )
        out[dep] = values
    return out


def _check_targets(cfg: SpaceConfig, params: list[Param], pipeline: Any, file: Path | None) -> None:
    from radio_nas.models import FAMILIES, resolve_config

    try:
        base_cfg = resolve_config(dict(cfg.base))
    except ConfigError as exc:
        raise exc.within(prefix="base") from None
    arch_fields = {f.name for f in dataclasses.fields(FAMILIES[base_cfg.family].config)}  # type: ignore[arg-type,attr-defined]
    fixed_arch = {p.field: p.dist.value for p in params if p.target == "arch" and p.fixed and not p.when}
    for p in params:
        key = f"parameters.{p.name}"
        if p.target == "arch":
            if p.field not in arch_fields:
                import difflib

                close = difflib.get_close_matches(p.field, arch_fields, n=1)
                hint = (
                    f"did you mean 'arch.{close[0]}'?" if close else f"expected one of {', '.join(sorted(arch_fields))}"
                )
                raise ConfigError(f"unknown architecture field {p.field!r}; {hint}", key=key)
        else:
            sample = p.dist.value if p.fixed else _representative(p)
            try:
                _load_pipeline(cfg.pipeline.path, {**cfg.pipeline.overrides, p.field: sample}, file)
            except ConfigError as exc:
                raise ConfigError(
                    f"the pipeline rejects it: {exc.detail}" + (f" (at {exc.key})" if exc.key else ""), key=key
                ) from None
    if fixed_arch:
        try:
            resolve_config({**cfg.base, **fixed_arch})
        except ConfigError as exc:
            field = (exc.key or "").split(".")[0].split("[")[0]
            key = f"parameters.arch.{field}" if field in fixed_arch else "base"
            raise ConfigError(f"the model rejects it: {exc.detail}", key=key) from None
    resolution = getattr(pipeline, "resolution", None)
    if resolution is not None and not any(p.target == "arch" and not p.fixed for p in params):
        from radio_nas.measure import parse_resolution

        try:
            resolve_config({**cfg.base, **fixed_arch}).check_input_size(*parse_resolution(resolution))  # type: ignore[attr-defined]
        except ConfigError as exc:
            raise ConfigError(f"the model rejects the pipeline resolution: {exc.detail}", key="base") from None


def _check_every_value(cfg: SpaceConfig, params: list[Param], pipeline: Any, file: Path | None) -> None:
    """Build the config of every choice and of each end of every range, as if it were sampled (no
    model, no training), so a value that can never run is refused before the sweep, not mid-way.

    An architecture value is tried against the base (with the fixed values and its conditions), then
    beside each value of every other architecture parameter; it is refused only when no such
    combination builds and takes one of the pipeline's resolutions (a value that some combination
    accepts may still be sampled beside one that rejects it: the sweep records that variant as
    rejected). A pipeline value is loaded into the pipeline on its own."""
    from radio_nas.measure import parse_resolution
    from radio_nas.measure.size import check_fits
    from radio_nas.models import resolve_config

    fixed_arch = {p.field: p.dist.value for p in params if p.target == "arch" and p.fixed and not p.when}
    batch = int(getattr(pipeline, "batch_size", 1) or 1)
    by_name = {p.name: p for p in params}
    varying_arch = [p for p in params if p.target == "arch" and not p.fixed]
    resolution_param = by_name.get("pipeline.resolution")
    if resolution_param is not None and not resolution_param.fixed:
        resolutions = [parse_resolution(v) for v in resolution_param.check_values]
    else:
        resolutions = [parse_resolution(pipeline.resolution)] if hasattr(pipeline, "resolution") else []

    def arch_error(spec: dict[str, Any]) -> ConfigError | None:
        """None when the config builds and takes at least one of the resolutions."""
        try:
            arch: Any = resolve_config(spec)
        except ConfigError as exc:
            return exc
        first = None
        for hw in resolutions:
            try:
                arch.check_input_size(*hw)
                check_fits(arch, hw, batch, training=True, what="a variant")  # counted, never built
                return None
            except ConfigError as exc:
                first = first or exc
        return first

    for p in params:
        key = f"parameters.{p.name}"
        if p.fixed:
            continue
        if p.target == "pipeline":
            for value in p.check_values:
                try:
                    _load_pipeline(cfg.pipeline.path, {**cfg.pipeline.overrides, p.field: value}, file)
                except ConfigError as exc:
                    raise ConfigError(
                        f"value {value!r}: the pipeline rejects it: {exc.detail}"
                        + (f" (at {exc.key})" if exc.key else ""),
                        key=key,
                    ) from None
            continue
        context = {**cfg.base, **fixed_arch}
        for dep, allowed in p.when.items():
            if by_name[dep].target == "arch":
                context[by_name[dep].field] = allowed[0]
        others = [{q.field: v} for q in varying_arch if q is not p for v in q.check_values]
        for value in p.check_values:
            first = arch_error({**context, p.field: value})
            if first is None or any(arch_error({**context, **o, p.field: value}) is None for o in others):
                continue
            raise ConfigError(
                f"value {value!r}: the model rejects it: {first.detail}"
                + (f" (at {first.key})" if first.key and first.key != p.field else ""),
                key=key,
            ) from None


def _representative(p: Param) -> Any:
    d = p.dist
    if isinstance(d, Choice):
        return d.values[0]
    return d.low


def _check_ablation(cfg: SpaceConfig, params: list[Param]) -> None:
    names = {p.name: p for p in params if not p.fixed}
    if not names:
        raise ConfigError("an ablation needs at least one parameter that varies", key="parameters")
    for name, level in cfg.ablation.base.items():
        if name not in names:
            raise ConfigError(
                f"{name!r} is not a varying parameter; expected one of {', '.join(names)}", key=f"ablation.base.{name}"
            )
        if level not in (names[name].finite_values or ()):
            raise ConfigError(f"{level!r} is not one of the levels of {name}", key=f"ablation.base.{name}")
    if any(p.name == "pipeline.seed" for p in params):
        raise ConfigError(
            "ablation mode sets pipeline.seed itself (ablation.seeds repeats per point)", key="parameters.pipeline.seed"
        )


def _load_pipeline(path: str | None, overrides: dict[str, Any], space_file: Path | None, key: str | None = None) -> Any:
    """The pipeline at `path`: a file found relative to the CWD, then the space file's folder and its
    parent; else a bundled pipeline name (``distill_cpu``). None means the embedded ``distill_cpu``."""
    from radio_nas.distill.pipeline import load_pipeline

    source: Any = "distill_cpu" if path is None else path
    if path is not None:
        candidates = [Path(path)]
        if space_file is not None and not Path(path).is_absolute():
            candidates += [space_file.parent / path, space_file.parent.parent / path]
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            source = found
        elif Path(path).suffix or "/" in path:
            raise ConfigError(
                f"pipeline file {path!r} does not exist (looked in the current folder and next to the space file)",
                key="pipeline.path",
            )
    try:
        return load_pipeline(source, dict(overrides) or None)
    except ConfigError as exc:
        if key is None:
            raise
        raise ConfigError(f"{exc}", key=key) from None
