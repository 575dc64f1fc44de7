"""Does a short trial rank variants like a long one? (``radio-nas validate``)

    from radio_nas.validate import ValidateSettings, run_validation, noise_threshold
    out = run_validation("search_spaces/mra.yaml", ValidateSettings(variants=6, budgets=(1, 4), seeds=2))
    out["comparisons"][0]["kendall_tau"], out["comparisons"][0]["kendall_tau_ci"]
    noise_threshold("results/mra")      # 2x median seed std of fidelity, once a validation exists

Modules: ``ranking`` (Kendall tau-b, Spearman rho, bootstrap CI, gap share; numpy only),
``plan`` (variants, budgets, seeds and the derived study space), ``analysis`` (statistics, table,
plot), ``run`` (orchestration through :func:`radio_nas.search.sweep.run_sweep`). The threshold a
report uses lives below both, in :mod:`radio_nas.study.noise` (re-exported here).
"""

from __future__ import annotations

from typing import Any

from radio_nas.study.noise import find_validation, noise_threshold
from radio_nas.validate.plan import ValidateSettings


def run_validation(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`radio_nas.validate.run.run_validation` (imported lazily: it pulls Ray)."""
    from radio_nas.validate.run import run_validation as _run

    return _run(*args, **kwargs)


__all__ = ["ValidateSettings", "find_validation", "noise_threshold", "run_validation"]
