"""The Ray Tune trainable of a sweep: it only trains and reports.

Everything else (sampling, constraints, costs, bookkeeping) happens in the driver
(:mod:`radio_nas.search.searcher`). Intermediate reports carry ``step``, ``train_loss`` and
``fidelity`` (for ASHA); the final report carries the whole run_trial dict as JSON.
"""
from __future__ import annotations

import json
import math
from typing import Any

FINAL_KEY = "radio_nas_final"
RESULT_KEY = "radio_nas_result"


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``config`` = {number, arch, pipeline, weights_path, threads}."""
    import ray
    import torch
    from ray import tune

    from radio_nas.distill import load_pipeline, run_trial

    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    pipeline = load_pipeline(config["pipeline"])

    def report(metrics: dict[str, Any]) -> None:
        if metrics.get("step") is not None and metrics["step"] >= pipeline.steps:
            return  # the final report below carries it; ASHA must not stop a fully trained trial
        slim = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        tune.report({**slim, FINAL_KEY: False})

    result = run_trial(pipeline, config["arch"], report=report, weights_path=config.get("weights_path")).to_dict()
    # No "step" here: a scheduler ignores this result, so a finished trial always completes.
    tune.report({"fidelity": _finite(result.get("fidelity")), "steps": result.get("steps"),
                 "node_id": ray.get_runtime_context().get_node_id(),
                 FINAL_KEY: True, RESULT_KEY: json.dumps(result, default=_jsonable)})


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
