"""One ablation summary: the sweep's closing lines and ``radio-nas report`` print the same table, with
the README's semantics (one factor at a time: a level's runs have every other factor at base).

The study is built through the real searcher and SQLite storage on the shipped two-factor
``search_spaces/vitdet.yaml`` (3 seeds, OFAT); trial results are handed in as the Ray trainable
would report them, so nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radio_nas.report.report import build_report
from radio_nas.search.ablation import ablation_points, queue_ablation
from radio_nas.search.optuna_study import default_storage, open_study
from radio_nas.search.searcher import StudySearcher
from radio_nas.search.space import load_space
from radio_nas.search.summary import ablation_summary, format_summary
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY
from radio_nas.study import open_study as open_for_reading
from radio_nas.study.ablation import ablation_markdown

REPO = Path(__file__).resolve().parents[1]


def _final(fidelity: float) -> dict:
    run = {
        "status": "ok",
        "failure_reason": None,
        "fidelity": fidelity,
        "images_per_s": 100.0 + 10 * fidelity,
        "steps": 2,
        "wall_s": 1.0,
        "weights_path": None,
    }
    return {"step": 2, "fidelity": fidelity, FINAL_KEY: True, RESULT_KEY: json.dumps(run)}


@pytest.mark.slow
def test_sweep_summary_and_report_print_the_same_ablation_table(tmp_path: Path) -> None:
    space = load_space(REPO / "search_spaces" / "vitdet.yaml", {"pipeline.overrides.steps": 2})
    results = tmp_path / "vitdet"
    url = default_storage(results)
    study = open_study(space, results, url)
    queue_ablation(study, space)
    points = ablation_points(space)
    assert len(points) == 12  # base + 2 other levels (window sets) + 1 (num_windowed), x 3 seeds
    searcher = StudySearcher(space, study, results, trials=len(points), progress=None)
    for i in range(len(points)):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        arch, seed = config["arch"], config["pipeline"]["seed"]
        fidelity = 0.5 + 0.05 * len(arch["vitdet_window_sizes"]) + 0.01 * arch["vitdet_num_windowed"] + 0.002 * seed
        searcher.on_trial_complete(f"t{i}", _final(fidelity))

    metrics = space.objective_names
    rows = ablation_summary(study, metrics)
    table = ablation_markdown(rows, metrics)
    printed = format_summary(study, space, results, url, rows)  # what run_sweep prints at the end
    report_md = (build_report(open_for_reading(results), pca=False).out_dir / "report.md").read_text()
    assert table in printed and table in report_md

    # OFAT: every level (the base ones included) has exactly its 3 seeded runs, never the pooled 6 or 9
    assert [(r["factor"], r["n"], r["n_seeds"]) for r in rows] == [("arch.vitdet_window_sizes", 3, 3)] * 3 + [
        ("arch.vitdet_num_windowed", 3, 3)
    ] * 2
    base = {r["factor"]: r for r in rows if r["base"]}
    assert base["arch.vitdet_window_sizes"]["fidelity_mean"] == pytest.approx(0.5 + 0.1 + 0.02 + 0.002)
    assert base["arch.vitdet_num_windowed"]["fidelity_mean"] == base["arch.vitdet_window_sizes"]["fidelity_mean"]
