"""Plan a validation: which variants, which budgets, which seeds, and the study space that runs them.

    from radio_nas.validate.plan import ValidateSettings, plan_validation, validation_space
    settings = ValidateSettings(variants=6, budgets=(1, 4), seeds=2)
    plan = plan_validation(space, settings)                  # K feasible, distinct variants
    derived = validation_space(space, plan, results_dir)     # a Space the sweep machinery runs

The variants come from the space's own distributions (a seeded random sampler, constraints checked
before anything trains) or from the Pareto set of an existing sweep (``from_dir``). The derived
space is the original one renamed ``<name>-validate`` with the budget and seed added as
parameters (``pipeline.steps``, ``pipeline.data.train_size``, ``pipeline.eval.every``,
``pipeline.seed``); every (variant, budget, seed) is enqueued in its study, so the same Ray Tune /
Optuna path as a sweep trains them and the dashboard shows them. A budget multiple ``m`` scales
the pipeline's ``steps`` (and the distinct training crops and the eval period with it, so a
longer run sees more data rather than the same crops again) by ``m``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from radio_nas._config import Config, ConfigError, dump_yaml
from radio_nas._util import atomic_write
from radio_nas.search.space import Space, load_space

# Parameters a validation sets itself, in the derived space.
STEPS, TRAIN_SIZE, EVAL_EVERY, SEED = (
    "pipeline.steps",
    "pipeline.data.train_size",
    "pipeline.eval.every",
    "pipeline.seed",
)
OWN_PARAMS = (STEPS, TRAIN_SIZE, EVAL_EVERY, SEED)
DERIVED_SPACE_FILE = "validate_space.yaml"
PIPELINE_FILE = "pipeline.yaml"
PLAN_FILE = "plan.json"
MAX_TRIALS = 10_000
"""A validation queues every (variant, budget, seed) up front: more than this is refused, not queued."""
MAX_TRIAL_STEPS = 1_000_000
"""Longest trial a budget may ask for (a CPU step takes 0.05 s or more: 10^6 steps is half a day)."""


@dataclasses.dataclass(frozen=True)
class ValidateSettings(Config):
    variants: int | None = None
    """Variants to compare; None: 6 sampled, or the whole Pareto set (at least 3) with ``from_dir``."""
    budgets: tuple[float, ...] = (1.0, 4.0)
    """Trial-length multiples of the pipeline's ``steps`` (1 = the sweep's trial length)."""
    seeds: int = 2
    """Repeats per (variant, budget): pipeline seeds seed, seed+1, ..."""
    scale_data: bool = True
    """Scale ``data.train_size`` and ``eval.every`` with the budget (False: only ``steps``)."""
    n_boot: int = 2000
    confidence: float = 0.95
    boot_seed: int = 0

    def validate(self) -> None:
        if self.variants is not None and self.variants < 2:
            raise ConfigError(
                f"expected an integer >= 2 (a ranking needs two variants), got {self.variants}", key="--variants"
            )
        if len(self.budgets) < 2 or len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(
                f"expected two or more distinct budget multiples (e.g. 1,4), got "
                f"{','.join(f'{b:g}' for b in self.budgets)}",
                key="--budgets",
            )
        if any(not b > 0 for b in self.budgets):
            raise ConfigError(
                f"expected positive budget multiples, got {','.join(f'{b:g}' for b in self.budgets)}", key="--budgets"
            )
        if self.seeds < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.seeds}", key="--seeds")
        if self.n_boot < 1:
            raise ConfigError(f"expected an integer >= 1, got {self.n_boot}", key="--boot")
        # at least 2 variants (a Pareto set may hold more): refused before anything is allocated
        check_trial_count(self.variants or 2, self)
        if not 0 < self.confidence < 1:
            raise ConfigError(f"expected a number in (0, 1), got {self.confidence}", key="--confidence")


@dataclasses.dataclass(frozen=True)
class TrainingBudget:
    """One training length a validation trains every variant at (a multiple of the sweep's steps);
    not the sweep's own ``budget`` (trials and wall time: :class:`radio_nas.search.space.Budget`)."""

    multiple: float
    steps: int
    overrides: dict[str, int]
    """The pipeline keys this budget sets (steps, data.train_size, eval.every)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    source: Space
    settings: ValidateSettings
    variants: tuple[dict[str, Any], ...]
    """Optuna parameter values per variant (categorical values encoded as in the study)."""
    budgets: tuple[TrainingBudget, ...]
    seeds: tuple[int, ...]
    origin: str
    """'sampled' or the sweep folder the Pareto set came from."""
    origin_trials: tuple[int | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_space": self.source.name,
            "source_space_hash": self.source.hash,
            "source_space_file": str(self.source.file) if self.source.file else None,
            "origin": self.origin,
            "origin_trials": list(self.origin_trials),
            "variants": [dict(v) for v in self.variants],
            "budgets": [{"multiple": b.multiple, "steps": b.steps, "overrides": b.overrides} for b in self.budgets],
            "seeds": list(self.seeds),
            "scale_data": self.settings.scale_data,
        }

    def trial_params(self) -> list[dict[str, Any]]:
        """Every trial to enqueue: seed-major, so a run cut short still has whole rankings."""
        out = []
        for seed in self.seeds:
            for variant in self.variants:
                for b in self.budgets:
                    params = dict(variant)
                    params.update({_PARAM_OF[k]: v for k, v in b.overrides.items()})
                    if len(self.seeds) > 1:
                        params[SEED] = seed
                    out.append(params)
        return out


_PARAM_OF = {"steps": STEPS, "data.train_size": TRAIN_SIZE, "eval.every": EVAL_EVERY}


def check_trial_count(n_variants: int, settings: ValidateSettings) -> None:
    """ConfigError naming the argument that makes the validation queue more than MAX_TRIALS trials."""
    n = n_variants * len(settings.budgets) * settings.seeds
    if n <= MAX_TRIALS:
        return
    factors = {"--variants": n_variants, "--budgets": len(settings.budgets), "--seeds": settings.seeds}
    key = max(factors, key=lambda k: factors[k])
    raise ConfigError(
        f"{n_variants:,} variants x {len(settings.budgets):,} budgets x {settings.seeds:,} seeds would queue "
        f"{n:,} trials; a validation queues at most {MAX_TRIALS:,} (a few variants and seeds rank already)",
        key=key,
    )


def variant_key(params: dict[str, Any]) -> str:
    """The identity of a variant inside the validation study: its parameters minus budget and seed."""
    return json.dumps({k: v for k, v in params.items() if k not in OWN_PARAMS}, sort_keys=True, default=str)


def budgets_for(space: Space, settings: ValidateSettings) -> tuple[TrainingBudget, ...]:
    p = space.pipeline
    out = []
    for m in sorted(settings.budgets):
        steps = max(1, round(p.steps * m))
        over = {"steps": steps}
        if settings.scale_data:
            over["data.train_size"] = max(1, round(p.data.train_size * m))
            if p.eval.every:
                over["eval.every"] = max(1, round(p.eval.every * m))
        _check_budget_size(space, m, over)
        out.append(TrainingBudget(float(m), steps, over))
    if len({b.steps for b in out}) != len(out):
        raise ConfigError(
            f"budgets {','.join(f'{b.multiple:g}' for b in out)} of {p.steps} steps give the same "
            f"step count twice ({[b.steps for b in out]}); pick multiples further apart",
            key="--budgets",
        )
    return tuple(out)


def _check_budget_size(space: Space, multiple: float, over: dict[str, int]) -> None:
    """A budget whose trial is too long, or keeps more training crops than memory holds, is refused
    with the estimate before anything is queued."""
    from radio_nas.measure.size import format_bytes, machine_memory

    if over["steps"] > MAX_TRIAL_STEPS:
        raise ConfigError(
            f"multiple {multiple:g} makes {over['steps']:,}-step trials ({space.pipeline.steps} x {multiple:g}); "
            f"at most {MAX_TRIAL_STEPS:,} steps a trial",
            key="--budgets",
        )
    crops = over.get("data.train_size")
    have = machine_memory()
    if crops is not None and have is not None:
        h, w = space.pipeline.size
        need = crops * 3 * h * w  # the distinct training crops a trial keeps, uint8
        if need > have:
            raise ConfigError(
                f"multiple {multiple:g} scales the training data to {crops:,} crops of {h}x{w}, about "
                f"{format_bytes(need)} in memory; this machine has {format_bytes(have)} (--steps-only keeps "
                "the data as it is)",
                key="--budgets",
            )


def check_space(space: Space) -> None:
    """A validation needs a search space that leaves budget and seed to it."""
    if space.config.mode != "search":
        raise ConfigError(
            "validate runs a search space; an ablation already repeats each point over seeds (ablation.seeds)",
            key="mode",
        )
    for p in space.params:
        if p.name in OWN_PARAMS:
            raise ConfigError(
                f"validate varies {p.name} itself (budgets and seeds); remove it from the space "
                "or fix it in pipeline.overrides",
                key=f"parameters.{p.name}",
            )
    if space.pipeline.steps < 1:
        raise ConfigError("the pipeline trains 0 steps; nothing to validate", key="pipeline.steps")


def plan_validation(
    space: Space, settings: ValidateSettings, *, from_dir: str | Path | None = None, progress: Any = None
) -> Plan:
    """Choose the variants (sampled, or a sweep's Pareto set), budgets and seeds."""
    check_space(space)
    budgets = budgets_for(space, settings)
    seeds = tuple(space.pipeline.seed + i for i in range(settings.seeds))
    if from_dir is not None:
        variants, numbers = _pareto_variants(space, Path(from_dir), settings.variants)
        check_trial_count(len(variants), settings)
        return Plan(space, settings, variants, budgets, seeds, str(from_dir), numbers)
    variants = _sample_variants(space, settings.variants or 6, progress)
    return Plan(space, settings, variants, budgets, seeds, "sampled", tuple(None for _ in variants))


def _sample_variants(space: Space, k: int, progress: Any) -> tuple[dict[str, Any], ...]:
    """K distinct feasible variants from a seeded random sampler (constraints checked, nothing trained)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=space.config.sampler.seed))
    found: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()  # feasible or not: each distinct variant is checked once
    size = space.grid_size()  # finite spaces: stop once every variant was seen
    tries = stale = 0
    limit = space.config.budget.max_infeasible + 20 * k
    while len(found) < k and tries < limit and stale < 200 and (size is None or len(seen) < size):
        tries += 1
        trial = study.ask()
        values = space.sample(trial)
        params = dict(trial.params)
        key = variant_key(params)
        if key in seen:
            stale += 1
            continue
        seen.add(key)
        stale = 0
        try:
            arch = space.arch_config(values)
            pipeline = space.pipeline_for(values)
            arch.check_input_size(*pipeline.size)
        except ConfigError:
            continue
        if _feasible(space, arch, pipeline.size):
            found[key] = params
    if len(found) < 2:
        raise ConfigError(
            f"found {len(found)} feasible distinct variant(s) in {tries} draws; a ranking needs two "
            "(loosen the constraints or widen the space)",
            key="constraints",
        )
    if len(found) < k and progress:
        progress(f"the space holds only {len(found)} feasible distinct variants (asked for {k}); using them all")
    return tuple(found.values())


def _feasible(space: Space, arch: Any, size: tuple[int, int]) -> bool:
    """The space's constraints, measuring only what they name (a GMACs count costs a trace)."""
    from radio_nas.search.costs import Costs, measure_costs, violations

    c = space.config.constraints
    if c.max_gmacs is None and c.max_latency_ms is None:
        if c.max_params is None:
            return True
        from radio_nas.measure import count_params
        from radio_nas.models import build_model

        return not violations(Costs(count_params(build_model(arch)), 0.0), c)
    return not violations(measure_costs(arch, space.config.latency, size, c.max_latency_ms is not None), c)


def _pareto_variants(
    space: Space, folder: Path, k: int | None
) -> tuple[tuple[dict[str, Any], ...], tuple[int | None, ...]]:
    """The sweep's Pareto set (filled from the next Pareto ranks up to max(k, 3)), by fidelity order."""
    from radio_nas.report.study_table import trials_table
    from radio_nas.study import open_study

    handle = open_study(folder)
    if handle.mode != "search":
        raise ConfigError("is an ablation, not a search sweep", file=folder, key="--from")
    made_by = handle.record.space_hash
    if made_by != space.hash:
        raise ConfigError(
            f"this sweep was made by a different space (hash {made_by}, the space given has "
            f"{space.hash}); pass the sweep's own space file or leave it out",
            file=folder,
            key="--from",
        )
    table = trials_table(handle.study)
    table = table[table["candidate"].astype(bool)]
    if table.empty:
        raise ConfigError("has no fully trained trial to validate", file=folder, key="--from")
    first = handle.objectives[0]
    table = table.sort_values(["pareto_rank", first.metric], ascending=[True, first.direction == "minimize"])
    want = k if k is not None else max(int((table["pareto_rank"] == 1).sum()), 3)
    chosen: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for number in table["number"]:
        trial = handle.study.trials[int(number)]
        params = {n: v for n, v in trial.params.items() if n not in OWN_PARAMS}
        key = variant_key(params)
        if key not in seen:
            seen.add(key)
            chosen.append((int(number), params))
    front = int((table["pareto_rank"] == 1).sum())
    if k is not None and front > k:  # more Pareto points than asked: spread them over the front
        import numpy as np

        picks = sorted({int(round(i)) for i in np.linspace(0, front - 1, k)})
        chosen = [chosen[i] for i in picks]
    chosen = chosen[:want]
    if len(chosen) < 2:
        raise ConfigError(
            f"has {len(chosen)} distinct trained variant(s); a ranking needs two", file=folder, key="--from"
        )
    return tuple(p for _, p in chosen), tuple(n for n, _ in chosen)


def validation_space(plan: Plan, results_dir: Path) -> Space:
    """Write ``validate_space.yaml`` (+ the resolved ``pipeline.yaml``) into `results_dir`; load it.

    The derived space is a plain space file: ``radio-nas sweep`` could run it too, and the study it
    creates is a normal sweep study (own name, own folder).
    """
    src = plan.source
    results_dir.mkdir(parents=True, exist_ok=True)
    raw = src.config.to_dict()
    raw["name"] = f"{src.name}-validate"
    variant_ids = [json.loads(variant_key(v)) for v in plan.variants]
    raw["description"] = (
        f"validation of {src.name} (space {src.hash}): {len(plan.variants)} variants "
        f"{json.dumps(variant_ids, sort_keys=True, default=str)}, budgets "
        f"{[b.multiple for b in plan.budgets]}, seeds {list(plan.seeds)}"
    )
    # The resolved pipeline (the space's overrides applied) next to the derived space: portable, exact.
    _write(results_dir / PIPELINE_FILE, dump_yaml(src.pipeline.to_dict()))
    raw["pipeline"] = {"path": PIPELINE_FILE, "overrides": {}}
    params = dict(raw.get("parameters") or {})
    for key in ("steps", "data.train_size", "eval.every"):
        values = sorted({b.overrides[key] for b in plan.budgets if key in b.overrides})
        if values:
            params[_PARAM_OF[key]] = {"_type": "choice", "_value": values} if len(values) > 1 else values[0]
    if len(plan.seeds) > 1:
        params[SEED] = {"_type": "choice", "_value": list(plan.seeds)}
    raw["parameters"] = params
    raw["sampler"] = {"name": "random", "seed": 0}  # every trial is enqueued; nothing is sampled
    raw["scheduler"] = {"name": "none"}  # a stopped trial would have no final fidelity
    raw["budget"] = {
        "trials": len(plan.trial_params()),
        "max_infeasible": dict(raw.get("budget") or {}).get("max_infeasible", 200),
    }
    raw.pop("storage", None)
    path = results_dir / DERIVED_SPACE_FILE
    _write(path, "# Written by radio-nas validate: the space its study runs (do not edit).\n" + dump_yaml(raw))
    return load_space(path)


def _write(path: Path, text: str) -> None:
    """Atomic: a crash never leaves a half-written file that a resume would trust."""
    atomic_write(path, text)
