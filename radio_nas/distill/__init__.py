"""Short multi-teacher distillation trials (AM-RADIO recipe) with a content-keyed teacher cache.

    from radio_nas.distill import load_pipeline, run_trial, build_teachers
    pipeline = load_pipeline("pipelines/distill_cpu.yaml", {"steps": 40, "balancing.method": "adaloss"})
    result = run_trial(pipeline, "t", report=print)       # a frozen TrialResult; .to_dict() is JSON
    teachers = build_teachers(pipeline)                   # teacher(images) -> (summary, features)

Modules: ``pipeline`` (configs), ``data`` (crop streams), ``teachers`` (adapters), ``cache``
(teacher outputs), ``adaptors``, ``losses``, ``balancing``, ``trial``. Torch loads on import of
the submodules that need it, not of this package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio_nas.distill.pipeline import PipelineConfig, TeacherConfig, load_pipeline

if TYPE_CHECKING:
    from radio_nas.distill.teachers import Teacher
    from radio_nas.distill.trial import TrialResult


def run_trial(
    pipeline: PipelineConfig | str | Path | dict,
    arch: Any,
    *,
    report: Callable[[dict[str, Any]], None] | None = None,
    weights_path: str | Path | None = None,
    progress: bool = False,
    pause: Callable[[], float] | None = None,
) -> TrialResult:
    from radio_nas.distill.trial import run_trial as _run_trial

    return _run_trial(pipeline, arch, report=report, weights_path=weights_path, progress=progress, pause=pause)


def build_teachers(pipeline: PipelineConfig) -> list[Teacher]:
    from radio_nas.distill.teachers import build_teachers as _build

    return _build(pipeline)


run_trial.__doc__ = "See :func:`radio_nas.distill.trial.run_trial`."
build_teachers.__doc__ = "See :func:`radio_nas.distill.teachers.build_teachers`."

__all__ = ["PipelineConfig", "TeacherConfig", "build_teachers", "load_pipeline", "run_trial"]
