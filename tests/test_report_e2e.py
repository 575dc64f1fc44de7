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
