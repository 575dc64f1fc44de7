"""Run a validation end to end: plan, train through the sweep machinery, analyse, write the verdict.

    from radio_nas.validate import ValidateSettings, run_validation
    out = run_validation("search_spaces/mra.yaml", ValidateSettings(variants=6, budgets=(1, 4), seeds=2))
    out["comparisons"][0]["kendall_tau"], out["results_dir"]      # results/mra-validate/

Results go to ``results/<name>-validate/`` like any study: ``study.db`` (its own Optuna study,
named after the derived space), ``validate_space.yaml`` + ``pipeline.yaml`` (what the study
runs), ``plan.json``, ``validation.json`` (the statistics), ``validation.md`` and
``short_vs_long.png``. Running the same command again resumes: finished trials are kept. A
different plan (other variants, budgets or seeds) on the same folder is refused.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas._config import ConfigError
from radio_nas._util import atomic_write
from radio_nas.search.space import Space, load_space
from radio_nas.study.layout import HASH_FILE, STUDY_FILE, VALIDATION_FILE, default_storage
from radio_nas.study.record import Status, read_trials, write_study
from radio_nas.study.storage import open_study
from radio_nas.validate.plan import PLAN_FILE, Plan, ValidateSettings, plan_validation, validation_space

if TYPE_CHECKING:
    from optuna.study import Study

RESULT_FILE = VALIDATION_FILE
PLOT_FILE = "short_vs_long.png"


def run_validation(
    space_source: str | Path | Space | None,
    settings: ValidateSettings,
    *,
    from_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    wall_time: Any = None,
    train: bool = True,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Plan, run (or resume) and analyse a validation; returns the validation.json content.

    ``train=False`` only analyses what the folder's study holds now (while it runs, or after it
    was stopped); it trains nothing and needs an existing validation of the same plan.
    """
    say = progress or (lambda line: None)
    space = _source_space(space_source, from_dir, overrides)
    plan = plan_validation(space, settings, from_dir=from_dir, progress=say)
    results = Path(results_dir) if results_dir is not None else Path("results") / f"{space.name}-validate"
    _check_plan(results, plan)
    if not train:
        return _analyse_only(results, plan)
    derived = validation_space(plan, results)
    atomic_write(results / PLAN_FILE, json.dumps(plan.to_dict(), indent=2, default=str))

    from radio_nas.report.report import sweep_pictures
    from radio_nas.search.optuna_study import open_study
    from radio_nas.search.sweep import run_sweep

    storage_url = default_storage(results)
    study = open_study(derived, results, storage_url)
    if not study.get_trials(deepcopy=False):
        for params in plan.trial_params():
            study.enqueue_trial(params)
        write_study(
            study, validation={"source_space_hash": space.hash, "source_space": space.name, "origin": plan.origin}
        )
    n_trials = len(plan.trial_params())
    say(
        f"[{derived.name}] {len(plan.variants)} variants x {len(plan.budgets)} budgets "
        f"({', '.join(f'{b.multiple:g}x={b.steps} steps' for b in plan.budgets)}) x {len(plan.seeds)} seeds "
        f"= {n_trials} trials -> {results}"
    )
    started = time.monotonic()
    outcome = run_sweep(
        derived,
        results_dir=results,
        storage=storage_url,
        address=address,
        trials=n_trials,
        wall_time=wall_time,
        num_cpus=num_cpus,
        progress=say,
        on_trained=sweep_pictures(results, derived.name),
    )
    wall = time.monotonic() - started
    return finish(results, plan, study, wall_s=wall, sweep_outcome=outcome)


def _analyse_only(results: Path, plan: Plan) -> dict[str, Any]:
    from radio_nas.search.optuna_study import study_name

    if not (results / PLAN_FILE).is_file() or not (results / STUDY_FILE).is_file():
        raise ConfigError(f"no validation in {results} to analyse; run it without --no-train first", key="--no-train")
    derived = validation_space(plan, results)
    if (results / HASH_FILE).is_file() and (results / HASH_FILE).read_text().strip() != derived.hash:
        raise ConfigError(f"{results} holds a validation of another space", key="--no-train")
    study = open_study(results, study_name(derived)).study  # read-only: creates nothing
    return finish(results, plan, study)


def finish(
    results: Path, plan: Plan, study: Study, *, wall_s: float | None = None, sweep_outcome: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Analyse the study's trials and write validation.json, validation.md and the plot."""
    from radio_nas.validate.analysis import analyse, collect, format_report, plot

    summary = analyse(collect(study, plan), plan)
    trial_walls = [t.metric("wall_s") or 0.0 for t in read_trials(study) if t.status is Status.OK]
    out: dict[str, Any] = {
        "name": f"{plan.source.name}-validate",
        "results_dir": str(results),
        "study": study.study_name,
        "storage": default_storage(results),
        "source_space": plan.source.name,
        "source_space_hash": plan.source.hash,
        "pipeline": plan.source.pipeline.to_dict(),
        "pipeline_id": getattr(plan.source.pipeline, "id", None),
        "origin": plan.origin,
        **summary,
        "wall_s": wall_s,
        "study_span_s": _span(study),
        "trial_wall_s_total": sum(trial_walls),
        "counts": (sweep_outcome or {}).get("counts"),
        "machine": machine_info(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    png = plot(summary, results / PLOT_FILE)
    out["plot"] = str(png) if png else None
    text = json.dumps(out, indent=2, default=str)
    atomic_write(results / RESULT_FILE, text)
    atomic_write(results / "validation.md", format_report(out))
    return out


def _span(study: Study) -> float | None:
    """First trial start to last trial end: the validation's wall time across resumes."""
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    ends = [t.datetime_complete for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _source_space(
    source: str | Path | Space | None, from_dir: str | Path | None, overrides: dict[str, Any] | None
) -> Space:
    if isinstance(source, Space):
        return source
    if source is None:
        if from_dir is None:
            raise ConfigError("give a search-space file, or --from a sweep's results folder", key="space")
        copy = Path(from_dir) / "space.yaml"
        if not copy.is_file():
            raise ConfigError("holds no space.yaml; pass the sweep's space file too", file=from_dir, key="--from")
        source = copy
    return load_space(source, overrides)


def _check_plan(results: Path, plan: Plan) -> None:
    """Resume only the same plan: anything else would mix two validations in one study."""
    existing = results / PLAN_FILE
    if not existing.is_file():
        return
    try:
        previous = json.loads(existing.read_text())
    except ValueError:
        raise ConfigError(
            "is not valid JSON; remove the folder or pick another with --results", file=existing
        ) from None
    mine = json.loads(json.dumps(plan.to_dict(), default=str))
    keys = ("source_space_hash", "variants", "budgets", "seeds")
    differs = [k for k in keys if previous.get(k) != mine.get(k)]
    if differs:
        raise ConfigError(
            f"{results} holds a validation with other {', '.join(differs)}; run the same command "
            "to resume it, or pick another folder with --results",
            key="--results",
        )
