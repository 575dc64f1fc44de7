"""Study loading into a table, on real Optuna studies in SQLite built with the sweep conventions.

``make_study`` is shared by the other report/export tests (imported from here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}
PIPELINE = {"name": "tiny", "resolution": 64, "teachers": [], "steps": 2}


def make_study(
    root: Path, name: str = "tiny", *, n_ok: int = 6, weights: bool = True, mode: str = "search", seed: int = 0
) -> Path:
    """A results folder ``root/name`` with a real SQLite study following the sweep conventions:
    `n_ok` fully trained trials (varying width), one failed, one pruned, one infeasible."""
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
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL,
            params={"width": 32, "window": 2},
            distributions=d2,
            user_attrs={"status": "failed", "failure_reason": "RuntimeError: out of memory"},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={"width": 16, "window": 4},
            distributions=d2,
            user_attrs={"status": "pruned"},
        )
    )
    # infeasible: rejected before training, recorded PRUNED (radio_nas.search convention)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={"width": 32, "window": 4},
            distributions=d2,
            user_attrs={"status": "infeasible", "failure_reason": "constraints: params 5.1M > 5M"},
        )
    )
    return results


def test_table_has_every_trial_and_ranks_only_trained_ones(tmp_path: Path) -> None:
    from radio_nas.report.study_table import trials_table
    from radio_nas.study import open_study

    results = make_study(tmp_path, weights=False)
    handle = open_study(results)
    table = trials_table(handle.study)
    assert len(table) == 9
    assert [o.metric for o in handle.objectives] == ["fidelity", "gmacs", "latency_ms"]
    assert {
        "number",
        "state",
        "status",
        "arch_id",
        "fidelity",
        "gmacs",
        "latency_ms",
        "n_params",
        "failure_reason",
        "pareto_rank",
        "param.width",
        "metric.knn_accuracy",
    } <= set(table.columns)
    by_status = dict(zip(table["number"], table["status"]))
    assert sorted(by_status.values()).count("ok") == 6
    infeasible = table[table["status"] == "infeasible"].iloc[0]
    assert not infeasible["candidate"] and not infeasible["pareto"]
    assert table.loc[table["status"] == "failed", "failure_reason"].iloc[0].startswith("RuntimeError")
    assert table.loc[table["status"] != "ok", "pareto_rank"].isna().all()
    assert table.loc[table["status"] == "ok", "pareto_rank"].min() == 1


def test_open_study_errors_name_the_source(tmp_path: Path) -> None:
    from radio_nas._config import ConfigError
    from radio_nas.study import open_study

    with pytest.raises(ConfigError, match="no such results folder"):
        open_study(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="study.db"):
        open_study(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no such SQLite file"):
        open_study(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # and none was created
    results = make_study(tmp_path, weights=False)
    with pytest.raises(ConfigError, match="no study 'other'"):
        open_study(f"sqlite:///{results / 'study.db'}", "other")
    assert open_study(f"sqlite:///{results / 'study.db'}", "tiny").results_dir == results
