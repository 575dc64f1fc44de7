"""Study loading into a table, on real Optuna studies in SQLite built with the sweep conventions
(the ``make_study`` fixture of conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_table_has_every_trial_and_ranks_only_trained_ones(tmp_path: Path, make_study) -> None:
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


def test_open_study_errors_name_the_source(tmp_path: Path, make_study) -> None:
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
