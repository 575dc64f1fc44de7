"""Shared test settings: quiet Ray, two torch threads, passive OpenMP waiting, and every radio-nas
cache in a temporary folder for the session (tests never write under the home folder)."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tests run throwaway local Ray clusters on loopback; the sweep itself never turns auth off.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# idle OpenMP threads sleep instead of spinning: the pytest process and Ray workers share 2 cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The root of every radio-nas cache (teachers/, latency/): one temporary folder per test session,
# set before anything imports radio_nas so subprocesses and Ray workers inherit it too.
_CACHE = tempfile.mkdtemp(prefix="radio-nas-test-cache-")
os.environ["RADIO_NAS_CACHE"] = _CACHE
# The tools' own caches too: matplotlib (~/.config/matplotlib, ~/.cache/matplotlib) and everything
# that follows XDG: onnxruntime's ~/.cache/Microsoft/DeveloperTools, torch hub, Hugging Face.
os.environ["MPLCONFIGDIR"] = os.path.join(_CACHE, "matplotlib")
os.environ["XDG_CACHE_HOME"] = os.path.join(_CACHE, "xdg-cache")

import torch  # noqa: E402  (after the environment above)

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _session_cache() -> object:
    yield _CACHE
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def make_study() -> Any:
    """``make_study(root, name="tiny", *, n_ok=6, weights=True, mode="search", seed=0) -> Path``:
    a results folder with a real SQLite study written with the sweep conventions."""
    return _make_study


@pytest.fixture(scope="session")
def wait_mid_sweep() -> Any:
    """``wait_mid_sweep(results, why=None, tick=None)``: poll a sweep running in another process
    (once a second, up to 240 s) until its study holds a finished trial and one still training;
    `tick()` runs on every poll; otherwise the test fails, with `why()` (e.g. the driver's log)."""
    return _wait_mid_sweep


def _wait_mid_sweep(results: Path, why: Any = None, tick: Any = None) -> None:
    import time

    import optuna

    from radio_nas._config import ConfigError
    from radio_nas.study.storage import open_study

    state = optuna.trial.TrialState
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if tick is not None:
            tick()
        if not (results / "study.db").exists():
            continue
        try:  # read-only: never creates tables under a driver that is starting
            trials = open_study(results).study.trials
        except (ConfigError, ValueError, optuna.exceptions.StorageInternalError):
            continue
        done = [t for t in trials if t.state == state.COMPLETE]
        running = [t for t in trials if t.state == state.RUNNING and t.user_attrs.get("status") == "running"]
        if done and running:
            return
    pytest.fail("the sweep never had a finished and a running trial at once" + (f":\n{why()}" if why else ""))


TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}
PIPELINE = {"name": "tiny", "resolution": 64, "teachers": [], "steps": 2}


def _make_study(
    root: Path, name: str = "tiny", *, n_ok: int = 6, weights: bool = True, mode: str = "search", seed: int = 0
) -> Path:
    """A results folder ``root/name`` with a real SQLite study following the sweep conventions:
    `n_ok` fully trained trials (varying width), one failed, one pruned, one infeasible."""
    import numpy as np
    import optuna
    import torch
    from safetensors.torch import save_file

    from radio_nas.models import build_model, resolve_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = root / name
    (results / "trials").mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=name, storage=f"sqlite:///{results / 'study.db'}", directions=["maximize", "minimize", "minimize"]
    )
    study.set_metric_names(["fidelity", "gmacs", "latency_ms"])
    study.set_user_attr("radio_nas_version", "0.1.0")
    study.set_user_attr("space_name", name)
    study.set_user_attr("mode", mode)
    study.set_user_attr(
        "objectives",
        [
            {"metric": "fidelity", "direction": "maximize"},
            {"metric": "gmacs", "direction": "minimize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
    )
    study.set_user_attr("pipeline", PIPELINE)
    study.set_user_attr("results_dir", str(results))
    rng = np.random.default_rng(seed)
    dist = {
        "width": optuna.distributions.CategoricalDistribution([16, 32]),
        "window": optuna.distributions.CategoricalDistribution([2, 4]),
    }
    for i in range(n_ok):
        width, window = [16, 32][i % 2], [2, 4][(i // 2) % 2]
        arch = resolve_config({**TINY, "width": width, "window_sizes": [window, window]})
        gmacs = 0.01 * width / 16 + 0.001 * window
        fidelity = float(0.3 + 0.1 * (width / 16) + rng.normal(0, 0.02))
        latency = float(1.0 + width / 16 + rng.random())
        attrs: dict[str, Any] = {
            "arch": arch.to_dict(),
            "arch_id": arch.id,
            "pipeline": PIPELINE,
            "status": "ok",
            "params": 1000 * width,
            "gmacs": gmacs,
            "latency_ms": latency,
            "latency_device": "cpu",
            "metrics": {"fidelity": fidelity, "knn_accuracy": 0.5, "train_loss_final": 1.0},
            "seed": i % 3,
            "weights_path": None,
            "failure_reason": None,
        }
        number = len(study.trials)
        if weights:
            torch.manual_seed(number)
            model = build_model(arch)
            state = {f"student.{k}": v.contiguous() for k, v in model.state_dict().items()}
            state["adaptors.t0.summary.weight"] = torch.randn(4, model.summary_dim)
            rel = Path("trials") / str(number) / "student.safetensors"
            (results / rel).parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(results / rel))
            attrs["weights_path"] = str(rel)
        params = {"width": width, "window": window}
        if mode == "ablation":
            params["seed"] = i % 3
            dist = {**dist, "seed": optuna.distributions.IntDistribution(0, 2)}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dist[k] for k in params},
                values=[fidelity, gmacs, latency],
                user_attrs=attrs,
            )
        )
    d2 = {"width": dist["width"], "window": dist["window"]}
    State = optuna.trial.TrialState
    for state, (width, window), attrs in (
        (State.FAIL, (32, 2), {"status": "failed", "failure_reason": "RuntimeError: out of memory"}),
        (State.PRUNED, (16, 4), {"status": "pruned"}),
        # infeasible: rejected before training, recorded PRUNED (radio_nas.search convention)
        (State.PRUNED, (32, 4), {"status": "infeasible", "failure_reason": "constraints: params 5.1M > 5M"}),
    ):
        params = {"width": width, "window": window}
        study.add_trial(optuna.trial.create_trial(state=state, params=params, distributions=d2, user_attrs=attrs))
    return results
