"""The Ray Tune trainable of a sweep: it only trains and reports.

Everything else (sampling, constraints, costs, bookkeeping) happens in the driver
(:mod:`radio_nas.search.searcher`). Intermediate reports carry ``step``, ``train_loss`` and
``fidelity`` (for schedulers and the study's learning curves); the final report carries the whole
trial result (``run_trial(...).to_dict()``) as JSON.

With ``config["gate"]`` (a local sweep running trials side by side) the trial takes part in the
driver's pause gate (:mod:`radio_nas.search.gate`): busy while computing, paused at a step
boundary while the driver times a latency, idle while blocked in ``tune.report``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from typing import Any

from radio_nas.search.gate import TrialGate

FINAL_KEY = "radio_nas_final"
RESULT_KEY = "radio_nas_result"
_WATCHED: set[int] = set()


def train_trial(config: dict[str, Any], driver: dict[str, Any] | None = None) -> None:
    """Ray Tune function trainable: ``config`` = {number, arch, pipeline, weights_path, threads, gate, hold};
    `driver` = {pid, host} of a local sweep driver: this worker exits when that process is gone."""
    gate = (
        TrialGate(config["gate"], int(config["number"]), hold=bool(config.get("hold"))) if config.get("gate") else None
    )
    if gate is not None:
        gate.start()  # first: importing torch and building the teachers compute too
    try:
        import ray
        import torch
        from ray import tune

        from radio_nas.distill import load_pipeline, run_trial

        if driver is not None:
            _exit_with(driver)
        if config.get("threads"):
            torch.set_num_threads(int(config["threads"]))
        pipeline = load_pipeline(config["pipeline"])
        # a blocking report is idle time for the gate (the driver may be waiting at it)
        idle = gate.idle if gate is not None else contextlib.nullcontext

        def report(metrics: dict[str, Any]) -> None:
            if metrics.get("step") is not None and metrics["step"] >= pipeline.steps:
                return  # the final report below carries it; ASHA must not stop a fully trained trial
            slim = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
            with idle():
                tune.report({**slim, FINAL_KEY: False})

        started_at = time.time()
        result = run_trial(
            pipeline,
            config["arch"],
            report=report,
            weights_path=config.get("weights_path"),
            pause=gate.pause if gate is not None else None,
        ).to_dict()
        # wall-clock span of run_trial (epoch seconds): how a benchmark sees when the slot trained
        result.update(started_at=started_at, finished_at=time.time())
        final = {
            "fidelity": _finite(result.get("fidelity")),
            "steps": result.get("steps"),
            "node_id": ray.get_runtime_context().get_node_id(),
            FINAL_KEY: True,
            RESULT_KEY: json.dumps(result, default=_jsonable),
        }
        # No "step" here: a scheduler ignores this result, so a finished trial always completes.
        with idle():
            tune.report(final)
    finally:
        if gate is not None:
            gate.stop()


def _exit_with(driver: dict[str, Any]) -> None:
    """A daemon thread that ends this worker process once the driver process has died, so a killed
    sweep leaves no worker writing into its results folder while a resume runs."""
    import socket

    pid = int(driver["pid"])
    if driver.get("host") != socket.gethostname() or pid in _WATCHED:
        return  # another host cannot see the pid; a reused actor watches already
    _WATCHED.add(pid)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="radio-nas-driver-watch", daemon=True).start()


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
