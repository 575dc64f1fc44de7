"""Multi-objective successive halving: rung levels and stop decisions on hand-made curves."""

import math
from pathlib import Path

import numpy as np
import pytest

from radio_nas._config import ConfigError
from radio_nas.search.mo_scheduler import (
    MOSuccessiveHalving,
    crowding_distance,
    rank_order,
    tune_scheduler,
)
from radio_nas.search.space import load_space

SMOKE = Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml"


def test_rungs_are_grace_times_eta_powers_below_max_t():
    assert MOSuccessiveHalving(["maximize"], grace_period=2, reduction_factor=3, max_t=20).rungs == (2, 6, 18)
    assert MOSuccessiveHalving(["maximize"], grace_period=10, reduction_factor=2, max_t=80).rungs == (10, 20, 40)
    with pytest.raises(ConfigError, match="reduction_factor"):
        MOSuccessiveHalving(["maximize"], grace_period=2, reduction_factor=1, max_t=20)


def test_one_objective_is_asha_top_third_continues():
    sh = MOSuccessiveHalving(["maximize"], grace_period=2, reduction_factor=3, max_t=20)
    decisions = {
        t: sh.on_result(t, step=2, value=v, costs=[])
        for t, v in [("a", 0.5), ("b", 0.4), ("c", 0.6), ("d", 0.55), ("e", 0.1)]
    }
    # a: alone; b: 1 of 2 kept, a is better; c: best of 3; d: 2nd of 4, ceil(4/3) = 2 kept; e: last of 5
    assert decisions == {"a": True, "b": False, "c": True, "d": True, "e": False}


def test_cheap_variant_with_a_poor_curve_survives_where_asha_would_stop_it():
    # (fidelity max, GMACs min), eta 2: half of the recorded points continue
    sh = MOSuccessiveHalving(["maximize", "minimize"], grace_period=2, reduction_factor=2, max_t=20)
    assert sh.on_result("a", step=2, value=0.8, costs=[2.0])
    assert not sh.on_result("b", step=2, value=0.5, costs=[3.0])  # dominated by a
    assert sh.on_result("c", step=2, value=0.3, costs=[0.5])  # worst fidelity, but the cheapest
    assert not sh.on_result("d", step=2, value=0.4, costs=[2.5])  # dominated by a: second front
    single = MOSuccessiveHalving(["maximize"], grace_period=2, reduction_factor=2, max_t=20)
    assert [single.on_result(t, step=2, value=v, costs=[]) for t, v in [("a", 0.8), ("b", 0.5), ("c", 0.3)]] == [
        True,
        False,
        False,
    ]


def test_a_trial_is_judged_once_per_rung_then_at_the_next():
    sh = MOSuccessiveHalving(["maximize", "minimize"], grace_period=2, reduction_factor=3, max_t=20)
    assert sh.on_result("a", step=2, value=0.9, costs=[1.0])
    assert not sh.on_result("b", step=2, value=0.1, costs=[2.0])
    assert sh.on_result("a", step=4, value=0.2, costs=[1.0])  # between rungs: no new decision
    assert sh.recorded(2) == {"a": (0.9, 1.0), "b": (0.1, 2.0)}
    assert sh.on_result("a", step=6, value=0.95, costs=[1.0]) and list(sh.recorded(6)) == ["a"]
    # a report past several rungs is judged at the highest one only
    assert sh.on_result("late", step=7, value=0.99, costs=[0.5]) and "late" not in sh.recorded(2)
    assert not sh.on_result("nan", step=2, value=math.nan, costs=[0.1])


def test_crowding_breaks_ties_inside_a_front():
    pts = np.array([[0.0, 4.0], [1.0, 3.0], [1.2, 2.8], [4.0, 0.0], [5.0, 5.0]])
    # per objective: (next - previous) / range, summed; the extremes are infinite
    assert crowding_distance(pts[:4]).tolist() == pytest.approx([math.inf, 0.6, 1.5, math.inf])
    assert rank_order(pts, ["minimize", "minimize"]).tolist() == [0, 3, 2, 1, 4]


class _Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_tune_scheduler_uses_measured_costs_and_hands_over_the_curve():
    space = load_space(SMOKE, {"scheduler": {"name": "moasha", "grace_period": 2, "reduction_factor": 3}})
    costs = {"t1": {"gmacs": 0.1, "latency_ms": 1.0}, "t2": {"gmacs": 0.2, "latency_ms": 2.0}}
    stopped = {}
    sched = tune_scheduler(space, costs.get, lambda tid, curve: stopped.setdefault(tid, curve))
    assert sched.on_trial_result(None, _Trial("t1"), {"step": 2, "fidelity": 0.5, "time_total_s": 1.5}) == "CONTINUE"
    # t2 is worse in every objective: stopped, with its curve handed over
    assert sched.on_trial_result(None, _Trial("t2"), {"step": 2, "fidelity": 0.4, "time_total_s": 2.0}) == "STOP"
    assert stopped == {"t2": [{"step": 2, "fidelity": 0.4, "seconds": 2.0}]}
    # the final report (no step) and a trial with unknown costs are never stopped
    assert sched.on_trial_result(None, _Trial("t2"), {"fidelity": 0.1}) == "CONTINUE"
    assert sched.on_trial_result(None, _Trial("t3"), {"step": 2, "fidelity": 0.0}) == "CONTINUE"


def test_space_validates_moasha():
    with pytest.raises(ConfigError, match="scheduler.name.*fidelity"):
        load_space(SMOKE, {"scheduler": "moasha", "objectives": [{"metric": "gmacs", "direction": "minimize"}]})
    with pytest.raises(ConfigError, match="scheduler.name"):
        load_space(SMOKE, {"scheduler": "bogus"})


@pytest.mark.slow
def test_real_smoke_sweep_with_moasha_records_pruned_trials_with_curves_off_the_front(tmp_path, monkeypatch):
    import optuna

    from radio_nas.search.optuna_study import default_storage, trained_count
    from radio_nas.search.summary import pareto_rows
    from radio_nas.search.sweep import run_sweep

    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    # eta 100: at the one rung (step 2 of 6) only the first-ranked trial so far continues
    overrides = {
        "scheduler": {"name": "moasha", "grace_period": 2, "reduction_factor": 100},
        "pipeline.overrides.steps": 6,
        "budget.trials": 4,
        "save_weights": False,
    }
    out = run_sweep(SMOKE, results_dir=tmp_path / "moasha", num_cpus=2, overrides=overrides, progress=None)
    storage = default_storage(tmp_path / "moasha")
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    pruned = [t for t in study.trials if t.user_attrs.get("status") == "pruned"]
    assert pruned and all(t.state == optuna.trial.TrialState.PRUNED for t in pruned)
    for t in pruned:
        curve = t.user_attrs["curve"]
        assert [p["step"] for p in curve] == [2] and curve[0]["seconds"] > 0
        assert curve[-1]["fidelity"] == pytest.approx(t.user_attrs["metrics"]["fidelity"])  # the last report
        assert "stopped" in t.user_attrs["failure_reason"]
    front = {row["trial"] for row in out["pareto"]} | {t.number for t in study.best_trials}
    assert front and not front & {t.number for t in pruned}
    assert {row["trial"] for row in pareto_rows(study, load_space(SMOKE, overrides))} == {
        row["trial"] for row in out["pareto"]
    }
    assert trained_count(study) == 4  # pruned trials count as trained (the budget)
