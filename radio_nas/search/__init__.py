"""Search spaces and sweeps (``radio-nas sweep``).

    from radio_nas.search import load_space, run_sweep
    space = load_space("search_spaces/mra.yaml")      # validated; ConfigError names file + key
    run_sweep(space)                                  # Ray Tune trials, Optuna study in results/mra/

Modules: ``grammar`` (Hydra/NNI parameter syntax), ``space`` (the space file), ``costs``
(params/GMACs/latency + constraints), ``optuna_study`` (the Optuna study behind a sweep: creation,
drivers, resume; the trial record itself is :mod:`radio_nas.study`), ``decisions`` (what the sweep
decides about each proposal), ``searcher`` (the Tune searcher driving the study by ask/tell) with
``timing`` (when a latency may be timed) and ``copies`` (which variant is which), ``gate`` (pausing
trials while a latency is timed), ``trainable`` (the Ray worker), ``ablation``,
``summary``, ``sweep`` (orchestration). Sweeps simulated against exhaustive tables live in
:mod:`radio_nas.simulate`.
"""

from __future__ import annotations

from typing import Any

from radio_nas.search.grammar import parse_param
from radio_nas.search.space import Space, load_space


def run_sweep(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`radio_nas.search.sweep.run_sweep` (imported lazily: it pulls Ray)."""
    from radio_nas.search.sweep import run_sweep as _run

    return _run(*args, **kwargs)


__all__ = ["Space", "load_space", "parse_param", "run_sweep"]
