"""Which parameters matter: PED-ANOVA importances per objective over the trained trials, the
too-few and ablation paths, and the parallel-coordinates plot, on real Optuna SQLite studies built
with the sweep's conventions (dotted names, list choices stored as JSON text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PATTERNS = [[[2, 1], [1]], [[1], [1]], [[2, 1, 1], [1]]]


def make_importance_study(root: Path, name: str = "imp", *, n_ok: int = 24, seed: int = 0) -> Path:
    """`n_ok` trained trials where ``arch.width`` sets fidelity and ``arch.mra_pattern`` and
    ``pipeline.optim.lr`` are noise; GMACs is the same everywhere; ``arch.head_dim`` is fixed in the
    space and ``arch.window`` has two choices of which one is ever seen. Also: an infeasible trial
    told COMPLETE with stand-in values, a copy of a re-proposed variant, a failure."""
    import optuna

    from radio_nas.search.space import encode_choice

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = root / name
    results.mkdir(parents=True)
    study = optuna.create_study(
        study_name=name, storage=f"sqlite:///{results / 'study.db'}", directions=["maximize", "minimize"]
    )
    study.set_metric_names(["fidelity", "gmacs"])
    study.set_user_attr("mode", "search")
    study.set_user_attr(
        "objectives", [{"metric": "fidelity", "direction": "maximize"}, {"metric": "gmacs", "direction": "minimize"}]
    )
    study.set_user_attr("results_dir", str(results))
    d = optuna.distributions
    dists = {
        "arch.width": d.CategoricalDistribution([16, 24, 32]),
        "arch.mra_pattern": d.CategoricalDistribution([encode_choice(p) for p in PATTERNS]),
        "arch.head_dim": d.CategoricalDistribution([16]),
        "arch.window": d.CategoricalDistribution([2, 4]),
        "pipeline.optim.lr": d.FloatDistribution(1e-4, 1e-2, log=True),
    }
    rng = np.random.default_rng(seed)

    def params() -> dict[str, Any]:
        return {
            "arch.width": [16, 24, 32][int(rng.integers(3))],
            "arch.mra_pattern": encode_choice(PATTERNS[int(rng.integers(3))]),
            "arch.head_dim": 16,
            "arch.window": 2,
            "pipeline.optim.lr": float(10 ** rng.uniform(-4, -2)),
        }

    def add(p: dict[str, Any], values: list[float] | None, state: Any = None, **attrs: Any) -> None:
        study.add_trial(
            optuna.trial.create_trial(
                state=state or optuna.trial.TrialState.COMPLETE,
                params=p,
                distributions={k: dists[k] for k in p},
                values=values,
                user_attrs={"status": "ok", "params": 1000, "gmacs": 0.01, "latency_ms": 1.0, **attrs},
            )
        )

    for _ in range(n_ok):
        p = params()
        fidelity = 0.1 * p["arch.width"] / 16 + float(rng.normal(0, 0.005))
        add(p, [fidelity, 0.01], metrics={"fidelity": fidelity})
    # stand-in values the sweep tells samplers for an infeasible variant: best fidelity, if it counted
    add(params() | {"arch.width": 16}, [10.0, 0.0], status="infeasible", failure_reason="constraints")
    add(params() | {"arch.width": 16}, [10.0, 0.0], duplicate_of=0)
    add(params(), None, optuna.trial.TrialState.FAIL, status="failed", failure_reason="RuntimeError: boom")
    return results


def test_the_parameter_that_sets_the_objective_ranks_first_and_noise_below(tmp_path: Path) -> None:
    from radio_nas.report.importance import param_importances
    from radio_nas.study import open_study

    handle = open_study(make_importance_study(tmp_path))
    imp = param_importances(handle.trials(), handle.objectives, mode=handle.mode)
    assert imp.computed and imp.n_trials == 24  # not the infeasible stand-in, the copy, the failure
    fidelity, gmacs = imp.per_objective
    assert fidelity.n_trials == 24 and fidelity.n_top == 5
    by_name = {p.param: p for p in fidelity.params}
    width = by_name["arch.width"]
    assert fidelity.params[0] is width
    for noise in ("arch.mra_pattern", "pipeline.optim.lr"):
        assert by_name[noise].share is not None and width.share is not None
        assert width.share > 2 * by_name[noise].share
        assert by_name[noise].p_chance is not None and by_name[noise].p_chance > width.p_chance  # type: ignore[operator]
    assert width.p_chance is not None and width.p_chance < 0.05
    assert width.first is not None and width.first >= 0.8
    assert width.low is not None and width.high is not None and width.low <= width.high
    assert sum(p.share for p in fidelity.params if p.share is not None) == pytest.approx(1.0)
    # a list choice is counted by its values; fixed and one-value parameters get no share, with why
    assert by_name["arch.mra_pattern"].n_values == 3
    assert by_name["arch.head_dim"].share is None and "fixed" in by_name["arch.head_dim"].note
    assert by_name["arch.window"].share is None and "one value seen" in by_name["arch.window"].note
    assert by_name["arch.window"].n_values == 1
    # the same GMACs everywhere: said, not a made-up ranking
    assert all(p.share is None for p in gmacs.params) and "same in every trial" in gmacs.note


def test_report_writes_the_section_the_plots_and_attaches_them(tmp_path: Path, capsys) -> None:
    import matplotlib.image as mpimg
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

    from radio_nas.cli import main

    results = make_importance_study(tmp_path)
    assert main(["report", str(results), "--no-pca", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    fidelity = payload["importances"]["objectives"][0]
    assert fidelity["metric"] == "fidelity" and fidelity["n_trials"] == 24
    assert fidelity["params"][0]["param"] == "arch.width"
    md = (results / "report.md").read_text()
    section = md.split("## Which parameters matter", 1)[1].split("\n## ", 1)[0]
    assert "24 fully trained trials" in section and "best 5" in section
    assert "| arch.width" in section and "fixed in the space" in section and "one value seen" in section
    html = (results / "report.html").read_text()
    assert "Which parameters matter" in html and "parallel_coordinates.png" in html
    for name in ("parallel_coordinates.png", "param_importances.png"):
        image = mpimg.imread(results / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image[..., :3].std() > 0  # drawn, not blank
        assert f"]({name})" in md
    csv = (results / "importances.csv").read_text().splitlines()
    assert csv[0].startswith("objective,direction,parameter,share") and len(csv) == 1 + 2 * 5
    study = optuna.load_study(study_name="imp", storage=f"sqlite:///{results / 'study.db'}")
    metas = {m.filename: m for m in get_all_artifact_meta(study)}
    assert {"parallel_coordinates.png", "param_importances.png", "importances.csv"} <= set(metas)
    store = FileSystemArtifactStore(str(results / "artifacts"))
    copy = tmp_path / "copy.png"
    download_artifact(
        artifact_store=store, artifact_id=metas["parallel_coordinates.png"].artifact_id, file_path=str(copy)
    )
    assert copy.read_bytes() == (results / "parallel_coordinates.png").read_bytes()


def test_too_few_trials_are_said_not_computed(tmp_path: Path) -> None:
    from radio_nas.report.importance import MIN_TRIALS, param_importances
    from radio_nas.report.report import build_report
    from radio_nas.study import open_study

    results = make_importance_study(tmp_path, n_ok=MIN_TRIALS - 1)
    rep = build_report(open_study(results), pca=False)
    assert rep.importances is not None and not rep.importances.computed and rep.importances.per_objective == ()
    assert rep.importances.n_trials == MIN_TRIALS - 1
    section = (results / "report.md").read_text().split("## Which parameters matter", 1)[1].split("\n## ", 1)[0]
    assert f"{MIN_TRIALS - 1} fully trained trials: too few" in section
    assert not (results / "importances.csv").exists() and not (results / "param_importances.png").exists()
    assert (results / "parallel_coordinates.png").is_file()  # the trials are still drawn
    # one more trial and it is computed
    more = open_study(make_importance_study(tmp_path, "more", n_ok=MIN_TRIALS))
    imp = param_importances(more.trials(), more.objectives, resamples=0, permutations=0)
    assert imp.computed and imp.per_objective[0].params[0].param == "arch.width"


def test_an_ablation_points_to_its_table_instead(tmp_path: Path, make_study) -> None:
    from radio_nas.report.report import build_report
    from radio_nas.study import open_study

    results = make_study(tmp_path, "abl", n_ok=12, weights=False, mode="ablation")
    rep = build_report(open_study(results), pca=False)
    assert rep.importances is not None and not rep.importances.computed and rep.importances.n_trials == 12
    md = (results / "report.md").read_text()
    section = md.split("## Which parameters matter", 1)[1].split("\n## ", 1)[0]
    assert "an ablation's importance is its table" in section and "|" not in section
    assert "## Ablation" in md and not (results / "importances.csv").exists()
    assert "importance is its table" in (results / "report.html").read_text()


def test_an_edited_space_merges_choices_and_ranges() -> None:
    import optuna

    from radio_nas.report.importance import merged_distributions
    from radio_nas.study.record import Status, TrialRecord

    d = optuna.distributions
    old = TrialRecord(
        0,
        "COMPLETE",
        Status.OK,
        distributions={"w": d.CategoricalDistribution([16, 24]), "lr": d.FloatDistribution(0.1, 0.5)},
    )
    new = TrialRecord(
        1,
        "COMPLETE",
        Status.OK,
        distributions={"w": d.CategoricalDistribution([24, 32]), "lr": d.FloatDistribution(0.2, 0.9)},
    )
    merged = merged_distributions([old, new])
    assert merged["w"] == d.CategoricalDistribution([16, 24, 32])
    assert merged["lr"] == d.FloatDistribution(0.1, 0.9)


def test_a_parameter_that_changed_kind_is_named_not_measured() -> None:
    import optuna

    from radio_nas.report.importance import MIN_TRIALS, param_importances
    from radio_nas.study.record import Objective, Status, TrialRecord

    d = optuna.distributions
    records = []
    for i in range(MIN_TRIALS + 2):
        old = i < 3  # an integer range first, choices after an edit of the space
        width = 20 if old else [16, 32][i % 2]
        dist = d.IntDistribution(16, 32) if old else d.CategoricalDistribution([16, 32])
        records.append(
            TrialRecord(
                i,
                "COMPLETE",
                Status.OK,
                values=(float(i % 3),),
                params={"w": width, "lr": 0.1 * (1 + i)},
                distributions={"w": dist, "lr": d.FloatDistribution(0.1, 2.0)},
            )
        )
    imp = param_importances(records, [Objective("fidelity", "maximize")], resamples=2, permutations=2)
    by_name = {p.param: p for p in imp.per_objective[0].params}
    assert by_name["w"].share is None and "changed kind" in by_name["w"].note
    assert by_name["lr"].share == pytest.approx(1.0)


def test_parallel_coordinates_need_trained_trials(tmp_path: Path, make_study) -> None:
    from radio_nas.report import plots
    from radio_nas.report.study_table import trials_table
    from radio_nas.study import open_study

    table = trials_table(open_study(make_study(tmp_path, n_ok=0, weights=False)).study)
    axes = [plots.Axis("param.width", "width", levels=("16", "32")), plots.Axis("fidelity", "fidelity")]
    assert plots.parallel_coordinates_plot(table, axes, tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()
