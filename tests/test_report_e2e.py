"""End to end on a real sweep: ``radio-nas sweep search_spaces/smoke.yaml`` (Ray Tune + Optuna, real
distillation trials against the offline ONNX teacher), then report and export of its Pareto set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_sweep_report_and_export(tmp_path: Path, capsys) -> None:
    from radio_nas.cli import main
    from radio_nas.models import build_model, resolve_config

    results = tmp_path / "smoke"
    home = tmp_path / "home"  # an empty home folder: the sweep must leave no radio-nas cache in it
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}  # RADIO_NAS_CACHE: the session's temporary cache (conftest)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "radio_nas",
            "sweep",
            str(REPO / "search_spaces" / "smoke.yaml"),
            "--results",
            str(results),
            "--num-cpus",
            "2",
            "--trials",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert not [p for p in written if "radio" in p], written
    assert any(Path(os.environ["RADIO_NAS_CACHE"], "teachers").iterdir())  # the caches went here instead
    assert any(Path(os.environ["RADIO_NAS_CACHE"], "latency").iterdir())

    assert main(["report", str(results), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_candidates"] == 2 and payload["pareto"]
    import optuna

    study = optuna.load_study(study_name=payload["study"], storage=f"sqlite:///{results / 'study.db'}")
    originals = {t.number for t in study.best_trials if t.user_attrs.get("duplicate_of") is None}
    assert {p["number"] for p in payload["pareto"]} == originals
    # the sweep attached each trained student's PCA picture to its own Optuna trial (while running)
    from optuna.artifacts import get_all_artifact_meta

    storage = optuna.storages.RDBStorage(f"sqlite:///{results / 'study.db'}")
    trained = [
        t for t in study.trials if t.user_attrs.get("status") == "ok" and t.user_attrs.get("duplicate_of") is None
    ]
    assert trained
    for t in trained:
        assert [m.filename for m in get_all_artifact_meta(t, storage=storage)] == ["pca.png"]
        assert (results / "trials" / str(t.number) / "pca.png").stat().st_size > 0
    assert (results / "report.md").is_file() and list((results / "pca").glob("pca_trial*.png"))
    # two trained trials: the report says they are too few for importances, and still draws them
    assert "2 fully trained trials: too few" in (results / "report.md").read_text()
    assert payload["importances"]["objectives"] == [] and (results / "parallel_coordinates.png").is_file()

    assert main(["export", str(results), "--pareto", "--weights", "--onnx", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)["exported"]
    assert len(exported) == len(payload["pareto"])
    for item in exported:
        doc = yaml.safe_load(Path(item["yaml"]).read_text())
        trial = study.trials[item["trial"]]
        assert resolve_config(item["yaml"]).id == trial.user_attrs["arch_id"]
        assert sum(p.numel() for p in build_model(item["yaml"]).parameters()) == trial.user_attrs["params"]
        assert doc["metrics"]["fidelity"] == pytest.approx(trial.values[0])
        assert Path(item["weights"]).stat().st_size > 0
        assert max(item["onnx_max_abs_diff"].values()) < 1e-4


@pytest.mark.slow
def test_smoke_sweep_of_ten_says_which_parameters_matter(tmp_path: Path, capsys) -> None:
    """A real 10-trial sweep (about 50 s on 2 CPUs): importances for every objective over its trained
    trials, on the sweep's own parameter names and encodings, and the plots attached to the study."""
    import optuna
    from optuna.artifacts import get_all_artifact_meta

    from radio_nas.cli import main
    from radio_nas.report.importance import MIN_TRIALS

    results = tmp_path / "smoke10"
    done = subprocess.run(
        [sys.executable, "-m", "radio_nas", "sweep", str(REPO / "search_spaces" / "smoke.yaml")]
        + ["--results", str(results), "--num-cpus", "2", "--trials", str(MIN_TRIALS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main(["report", str(results), "--no-pca", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    imp = payload["importances"]
    assert imp["n_trials"] == payload["n_candidates"] == MIN_TRIALS and imp["note"] == ""
    assert [o["metric"] for o in imp["objectives"]] == ["fidelity", "gmacs", "latency_ms"]
    space = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())["parameters"]
    for objective in imp["objectives"]:
        assert objective["n_trials"] == MIN_TRIALS and objective["n_top"] >= 5
        assert {p["param"] for p in objective["params"]} == set(space)  # dotted names, list choices
        shares = [p["share"] for p in objective["params"] if p["share"] is not None]
        assert shares and sum(shares) == pytest.approx(1.0)
    lr = next(p for p in imp["objectives"][0]["params"] if p["param"] == "pipeline.optim.lr")
    assert lr["n_values"] == MIN_TRIALS  # a continuous parameter: every trial its own value
    md = (results / "report.md").read_text()
    assert f"**{MIN_TRIALS} fully trained trials**" in md and "| arch.mra_pattern" in md
    study = optuna.load_study(study_name=payload["study"], storage=f"sqlite:///{results / 'study.db'}")
    names = {m.filename for m in get_all_artifact_meta(study)}
    assert {"parallel_coordinates.png", "param_importances.png", "importances.csv"} <= names
