"""The study conventions shared by the sweep (writer) and the report, export and validation (readers).

    from radio_nas.study import Status, TrialRecord, read_trials, open_study
    handle = open_study("results/mra")                 # read-only
    [r.number for r in handle.trials() if r.is_candidate]

Modules: ``record`` (statuses, metric names, the trial and study records, their writer and reader),
``layout`` (file names of a results folder), ``storage`` (read-only opening), ``ablation`` (the one
ablation summary), ``noise`` (the seed-noise threshold a validation measured). Nothing here
imports :mod:`radio_nas.search`, :mod:`radio_nas.report` or :mod:`radio_nas.validate`.
"""

from __future__ import annotations

from radio_nas.study.record import (
    COST_METRICS,
    MEASURED_METRICS,
    TRIAL_METRICS,
    Objective,
    Status,
    StudyRecord,
    TrialRecord,
    read_trials,
    study_objectives,
    write_study,
    write_trial,
)
from radio_nas.study.storage import StudyHandle, open_study

__all__ = [
    "COST_METRICS",
    "MEASURED_METRICS",
    "TRIAL_METRICS",
    "Objective",
    "Status",
    "StudyHandle",
    "StudyRecord",
    "TrialRecord",
    "open_study",
    "read_trials",
    "study_objectives",
    "write_study",
    "write_trial",
]
