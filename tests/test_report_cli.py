"""``radio-nas report`` on real SQLite studies with failed, pruned and infeasible trials; ablation
statistics; reference rows; PCA pictures attached as Optuna artifacts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def test_report_search_study_writes_everything(tmp_path: Path, capsys, make_study) -> None:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

    from radio_nas.cli import main

    results = make_study(tmp_path)
    assert main(["report", str(results), "--reference", "--no-pca", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'study.db'}")
    assert {p["number"] for p in payload["pareto"]} == {
        t.number for t in study.best_trials if t.user_attrs["status"] == "ok"
    }
    assert payload["status_counts"] == {"ok": 6, "failed": 1, "pruned": 1, "infeasible": 1}
    assert 0 < payload["hypervolume"]["value"] <= 1 and len(payload["hypervolume"]["reference"]) == 3
    for name in (
        "report.md",
        "report.html",
        "trials.csv",
        "pareto.csv",
        "fidelity_vs_gmacs.png",
        "fidelity_vs_latency.png",
        "parameter_effects.png",
    ):
        assert (results / name).is_file(), name
    trials = pd.read_csv(results / "trials.csv")
    assert len(trials) == 9 and set(trials["status"]) == {"ok", "failed", "pruned", "infeasible"}
    pareto = pd.read_csv(results / "pareto.csv")
    assert sorted(pareto["number"]) == sorted(p["number"] for p in payload["pareto"])
    md = (results / "report.md").read_text()
    assert "Hypervolume" in md and "reference point" in md
    assert "RuntimeError: out of memory" in md  # failure reasons shown
    assert re.search(r"\| reference +\|", md) and "E-RADIO-L (v2)" in md  # bundled published rows, marked
    assert "Ablation" not in md

    # PCA pictures per Pareto variant, attached as study artifacts (finished trials are frozen in
    # Optuna 5.0); a re-run overwrites them in place
    assert main(["report", str(results), "--max-pca", "2"]) == 0
    assert main(["report", str(results), "--max-pca", "2"]) == 0
    pictures = sorted((results / "pca").glob("pca_trial*.png"))
    assert len(pictures) == 2
    store = FileSystemArtifactStore(str(results / "artifacts"))
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'study.db'}")
    metas = get_all_artifact_meta(study)
    names = sorted(m.filename for m in metas)
    assert names == sorted(
        {p.name for p in pictures}
        | {"fidelity_vs_gmacs.png", "fidelity_vs_latency.png", "parameter_effects.png", "parallel_coordinates.png"}
    )  # 6 trained trials: too few for importances, so no importance chart or CSV
    for meta in metas:
        if meta.filename.startswith("pca_"):
            copy = tmp_path / meta.filename
            download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(copy))
            assert copy.read_bytes() == (results / "pca" / meta.filename).read_bytes()
    assert "pca/pca_trial" in (results / "report.md").read_text()


def test_report_ablation_mean_and_ci(tmp_path: Path, make_study) -> None:
    from scipy import stats

    from radio_nas.report.report import build_report
    from radio_nas.study import open_study

    results = make_study(tmp_path, "abl", n_ok=8, weights=False, mode="ablation")
    rep = build_report(open_study(results), pca=False)
    assert set(rep.ablation) == {"width", "window"}  # the seed is not a factor
    width = rep.ablation["width"]
    ok = rep.table[rep.table["candidate"]]
    for _, row in width.iterrows():
        values = ok.loc[ok["param.width"] == row["level"], "fidelity"].to_numpy(dtype=float)
        assert row["n"] == len(values) == 4
        assert row["fidelity_mean"] == pytest.approx(values.mean())
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        assert row["fidelity_ci95"] == pytest.approx(half)
        assert row["n_seeds"] == len(set(ok.loc[ok["param.width"] == row["level"], "param.seed"]))
    assert (results / "ablation.csv").is_file() and (results / "ablation_fidelity.png").is_file()
    md = (results / "report.md").read_text()
    assert "## Ablation" in md and re.search(r"\| width +\|", md) and "±" in md


def test_report_errors_are_one_line(tmp_path: Path, capsys, make_study) -> None:
    from radio_nas.cli import main

    results = make_study(tmp_path, weights=False)
    bad = tmp_path / "ref.yaml"
    bad.write_text("rows:\n  - name: x\n    params_m: lots\n")
    assert main(["report", str(results), "--reference", str(bad), "--no-pca"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ref.yaml" in err and "rows[0].params_m" in err and "\n" not in err
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_report_on_a_study_with_nothing_trained(tmp_path: Path, make_study) -> None:
    import optuna

    from radio_nas.report.report import build_report
    from radio_nas.study import open_study

    results = make_study(tmp_path, n_ok=0, weights=False)
    rep = build_report(open_study(results), pca=False)
    assert rep.pareto.empty and rep.hypervolume.value == 0.0
    payload = json.loads(json.dumps(rep.pareto_json(), allow_nan=False))  # strict JSON, no NaN
    assert payload["pareto"] == [] and payload["hypervolume"]["reference"] == [None, None, None]
    assert "_(none)_" in (results / "report.md").read_text()
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{results / 'study.db'}").trials) == 3
