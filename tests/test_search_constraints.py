"""The study searcher without Ray: constraints checked before training, every trial outcome
recorded in the right state, resume bookkeeping, ablation statistics. Real Optuna SQLite storage."""

import json
from pathlib import Path

import optuna
import pytest
import yaml
from ray.tune.search import Searcher

from radio_nas._util import mean_ci
from radio_nas.search.ablation import ablation_design, ablation_points
from radio_nas.search.costs import Costs, violations
from radio_nas.search.optuna_study import default_storage, open_study, recover_orphans, trained_count
from radio_nas.search.searcher import StudySearcher
from radio_nas.search.space import Constraints, load_space
from radio_nas.search.summary import ablation_summary
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY
from radio_nas.study import Status, TrialRecord, read_trials, write_study

REPO = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}
State = optuna.trial.TrialState


def space_file(tmp_path, **extra):
    data = {
        "name": "c1",
        "pipeline": {"path": str(REPO / "pipelines/distill_cpu.yaml"), "overrides": {"steps": 2, "resolution": 64}},
        "base": TINY,
        "parameters": {"arch.width": "choice(16, 64)", "pipeline.optim.lr": "tag(log, interval(1e-4, 1e-2))"},
        "objectives": [{"metric": "fidelity", "direction": "maximize"}, {"metric": "gmacs", "direction": "minimize"}],
        "sampler": {"name": "random", "seed": 0},
        **extra,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def setup(tmp_path, **extra):
    space = load_space(space_file(tmp_path, **extra))
    results = tmp_path / "results"
    study = open_study(space, results, default_storage(results))
    return space, study, results


def final_result(fidelity=0.5, status="ok", reason=None):
    run = {
        "status": status,
        "failure_reason": reason,
        "fidelity": fidelity,
        "loss_curve": [1.0, 0.5],
        "steps": 2,
        "wall_s": 1.0,
        "weights_path": None,
    }
    return {"step": 2, "fidelity": fidelity, FINAL_KEY: True, RESULT_KEY: json.dumps(run)}


def test_violations_lists_every_broken_limit():
    c = Costs(params=2_000_000, gmacs=3.0, latency_ms=12.0)
    assert violations(c, Constraints()) == []
    assert violations(c, Constraints(max_params=1e6, max_gmacs=5, max_latency_ms=10)) == [
        "params 2e+06 > max_params 1e+06",
        "latency_ms 12 > max_latency_ms 10",
    ]


def test_infeasible_variants_are_recorded_never_trained(tmp_path):
    # width 64 at 64 px is ~0.09 GMACs, width 16 ~0.008: a 0.03 limit keeps only width 16.
    space, study, results = setup(tmp_path, constraints={"max_gmacs": 0.03}, budget={"trials": 3})
    s = StudySearcher(space, study, results, trials=3, progress=None)
    handed_out = []
    for i in range(3):
        config = s.suggest(f"t{i}")
        assert config and config["arch"]["width"] == 16
        handed_out.append(config["number"])
        s.on_trial_complete(f"t{i}", final_result(0.4 + i / 10))
    assert s.suggest("t9") == Searcher.FINISHED
    trials = study.get_trials()
    records = read_trials(study)
    infeasible = [r for r in records if r.status is Status.INFEASIBLE]
    assert infeasible, "the random sampler should have drawn width 64 at least once"
    for r in infeasible:
        # told COMPLETE so NSGA-II and GP learn from it; its violated constraint keeps it off every front
        assert r.state == "COMPLETE" and r.params["arch.width"] == 64 and not r.is_candidate
        assert r.gmacs > 0.03 and "max_gmacs" in r.reason
        assert r.constraints["max_gmacs"] == pytest.approx(r.gmacs / 0.03 - 1) and r.constraints["max_gmacs"] > 0
        assert r.number not in handed_out
        assert not (results / "trials" / str(r.number)).exists()
    ok = [r for r in records if r.is_candidate]
    assert [r.number for r in ok] == handed_out and trained_count(study) == 3
    assert all(r.constraints["max_gmacs"] <= 0 for r in ok)
    assert {b.number for b in study.best_trials} <= set(handed_out)  # Optuna's front skips infeasible ones
    ok = [t for t in trials if t.number in handed_out]
    t = ok[0]
    assert t.values == [0.4, pytest.approx(t.user_attrs["gmacs"])]
    for key in (
        "arch",
        "arch_id",
        "pipeline",
        "params",
        "gmacs",
        "latency_ms",
        "latency_device",
        "status",
        "failure_reason",
        "metrics",
        "loss_curve",
        "weights_path",
        "seed",
    ):
        assert key in t.user_attrs, key
    assert t.user_attrs["loss_curve"] == [1.0, 0.5] and "loss_curve" not in t.user_attrs["metrics"]
    assert study.best_trials and all(TrialRecord.from_trial(b).is_candidate for b in study.best_trials)


def test_model_rejection_is_infeasible_and_too_many_stop_the_sweep(tmp_path):
    # width 16 with head_dim 48 is refused by the model config (4*16 = 64 is not divisible by 48); every
    # value on its own is usable, so the space loads. Five such proposals in a row stop the sweep.
    space, study, results = setup(
        tmp_path,
        parameters={"arch.width": "choice(16, 48)", "arch.head_dim": "choice(16, 48)"},
        budget={"trials": 2, "max_infeasible": 5},
    )
    for _ in range(5):
        study.enqueue_trial({"arch.width": 16, "arch.head_dim": 48})
    s = StudySearcher(space, study, results, trials=2, progress=None)
    assert s.suggest("t0") == Searcher.FINISHED
    trials = study.get_trials()
    assert len(trials) == 5 and all(t.state == State.PRUNED for t in trials)
    assert all("divisible by head_dim" in t.user_attrs["failure_reason"] for t in trials)
    assert "max_infeasible" in s.stats().stop_reason
    assert all(TrialRecord.from_trial(t).status is Status.INFEASIBLE for t in trials)
    assert all(TrialRecord.from_trial(t).constraints == {} for t in trials)  # no constraint declared here


def test_failed_pruned_and_crashed_trials(tmp_path):
    space, study, results = setup(tmp_path)
    s = StudySearcher(space, study, results, trials=10, progress=None)
    for i in range(3):
        assert s.suggest(f"t{i}") is not None
        assert s.suggest("extra") is None  # concurrency 1: one live trial at a time
        if i == 0:
            s.on_trial_complete("t0", final_result(float("nan"), status="failed", reason="loss is NaN at step 1"))
        elif i == 1:  # stopped by ASHA: the last result was an intermediate one
            s.on_trial_complete("t1", {"step": 1, "fidelity": 0.2, "train_loss": 1.0, FINAL_KEY: False})
        else:
            s.on_trial_complete("t2", None, error=True)
    by_status = {t.user_attrs["status"]: t for t in study.get_trials()}
    assert by_status["failed"].state == State.FAIL
    assert (
        "NaN" in by_status["failed"].user_attrs["failure_reason"]
        or "Ray worker" in by_status["failed"].user_attrs["failure_reason"]
    )
    pruned = by_status["pruned"]
    assert pruned.state == State.PRUNED and pruned.values is None and "scheduler" in pruned.user_attrs["failure_reason"]
    assert trained_count(study) == 3 and study.best_trials == []


def test_orphans_are_failed_and_requeued_and_not_counted(tmp_path):
    space, study, results = setup(tmp_path)
    s = StudySearcher(space, study, results, trials=5, progress=None)
    config = s.suggest("t0")
    s.on_trial_complete("t0", final_result())
    config = s.suggest("t1")  # the driver "dies" with this one running
    orphan_params = study.trials[config["number"]].params
    again = open_study(space, results, default_storage(results))  # a new driver
    assert recover_orphans(again) == [config["number"]]
    t = again.trials[config["number"]]
    assert t.state == State.FAIL and t.user_attrs["orphaned"] and trained_count(again) == 1
    waiting = again.get_trials(states=(State.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == orphan_params
    s2 = StudySearcher(space, again, results, trials=5, progress=None)
    rerun = s2.suggest("t2")
    assert again.trials[rerun["number"]].params == orphan_params  # the queued parameters run first


def test_an_edited_space_on_the_same_folder_resumes_and_other_objectives_are_refused(tmp_path):
    """Edits of what is searched resume as the folder's next revision (tests/test_carry.py has the
    details); other objectives would make every old value meaningless: refused, naming the key."""
    from radio_nas._config import ConfigError

    space, study, results = setup(tmp_path)
    assert (results / "space.yaml").is_file()
    fid = [{"metric": "fidelity", "direction": "maximize"}]
    with pytest.raises(ConfigError, match="objectives changed") as err:
        open_study(load_space(space_file(tmp_path, objectives=fid)), results, default_storage(results))
    assert err.value.key == "objectives"
    assert len(optuna.get_all_study_summaries(default_storage(results))) == 1
    other = load_space(space_file(tmp_path, parameters={"arch.width": "choice(16, 32)"}))
    edited = open_study(other, results, default_storage(results))
    assert edited.study_name != study.study_name and edited.user_attrs["revision"] == 2


def test_ablation_summary_mean_and_ci(tmp_path):
    space, study, results = setup(
        tmp_path,
        mode="ablation",
        ablation={"design": "ofat", "seeds": 3},
        parameters={"arch.width": "choice(16, 32)"},
        objectives=[{"metric": "fidelity", "direction": "maximize"}],
    )
    points = ablation_points(space)
    assert len(points) == 6
    for p in points:
        study.enqueue_trial(p)
    write_study(study, ablation=ablation_design(space).to_dict())  # as run_sweep does
    s = StudySearcher(space, study, results, trials=6, progress=None)
    fid = {16: [0.5, 0.6, 0.7], 32: [0.8, 0.8, 0.8]}
    for i in range(6):
        c = s.suggest(f"t{i}")
        w = c["arch"]["width"]
        s.on_trial_complete(f"t{i}", final_result(fid[w][c["pipeline"]["seed"]]))
    rows = {r["level"]: r for r in ablation_summary(study, ["fidelity"])}
    assert rows[16]["n"] == 3 and rows[16]["fidelity_mean"] == pytest.approx(0.6)
    # t(0.975, 2) * sd / sqrt(n)
    assert rows[16]["fidelity_ci95"] == pytest.approx(4.302653 * 0.1 / 3**0.5, rel=1e-5)
    assert rows[32]["fidelity_ci95"] == pytest.approx(0.0, abs=1e-12) and rows[16]["base"]
    mean, ci, std = mean_ci([1.0])
    assert mean == 1.0 and ci != ci and std != std  # nan for a single value


def test_an_identical_variant_is_recorded_not_trained_again(tmp_path):
    space, study, results = setup(
        tmp_path, parameters={"arch.width": "choice(16)"}, budget={"trials": 3, "max_infeasible": 4}
    )
    s = StudySearcher(space, study, results, trials=3, progress=None)
    first = s.suggest("t0")
    s.on_trial_complete("t0", final_result(0.45))
    assert s.suggest("t1") == Searcher.FINISHED  # only known points are proposed: stop, don't loop
    copies = [t for t in study.trials if t.number != first["number"]]
    assert len(copies) == 4 and "already-trained" in s.stats().stop_reason
    for t in copies:
        assert t.state == State.COMPLETE and t.user_attrs["duplicate_of"] == first["number"]
        assert t.values == study.trials[first["number"]].values
        assert not (results / "trials" / str(t.number)).exists()
    assert trained_count(study) == 1


def test_latency_is_timed_with_the_declared_threads_and_cached(tmp_path, monkeypatch):
    import torch

    from radio_nas.models import resolve_config
    from radio_nas.search.costs import latency_is_cached, measure_costs
    from radio_nas.search.space import LatencySettings

    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path))
    cfg = resolve_config(TINY)
    settings = LatencySettings(threads=1, runs=2, warmup=0)
    before = torch.get_num_threads()
    assert not latency_is_cached(cfg, settings, (64, 64))
    costs = measure_costs(cfg, settings, (64, 64), need_latency=True)
    assert costs.latency_ms > 0 and costs.latency_device.endswith("(1 threads)")
    assert latency_is_cached(cfg, settings, (64, 64))  # the driver's idle-device check agrees with the cache
    assert torch.get_num_threads() == before


def test_after_a_copy_an_untried_variant_is_queued(tmp_path):
    space, study, results = setup(tmp_path, parameters={"arch.width": "choice(16, 32)"}, budget={"trials": 2})
    s = StudySearcher(space, study, results, trials=2, progress=None)
    first = s.suggest("t0")
    s.on_trial_complete("t0", final_result(0.4))
    study.enqueue_trial({"arch.width": first["arch"]["width"]})  # the sampler re-proposes it
    second = s.suggest("t1")
    assert {first["arch"]["width"], second["arch"]["width"]} == {16, 32}
    copies = [t for t in study.trials if t.user_attrs.get("duplicate_of") is not None]
    assert len(copies) == 1 and copies[0].user_attrs["duplicate_of"] == first["number"]


def test_learning_curves_are_intermediate_values_in_a_multi_objective_study(tmp_path):
    # Optuna's Trial.report refuses multi-objective studies: the searcher writes through the storage.
    space, study, results = setup(tmp_path)
    assert len(study.directions) == 2
    s = StudySearcher(space, study, results, trials=2, progress=None)
    config = s.suggest("t0")
    s.on_trial_result("t0", {"step": 1, "fidelity": 0.2, "train_loss": 1.0, FINAL_KEY: False})
    s.on_trial_complete("t0", final_result(0.35))  # the last eval (step 2) comes with the final result
    trial = study.trials[config["number"]]
    assert trial.intermediate_values == {1: 0.2, 2: 0.35}
    record = TrialRecord.from_trial(trial)
    assert [(c["step"], c["fidelity"]) for c in record.curve] == [(1, 0.2), (2, 0.35)]
    assert all(c["seconds"] >= 0 for c in record.curve) and record.steps == 2 and record.train_seconds == 1.0
    # a trial stopped by a scheduler keeps its curve and is PRUNED, never on a front
    config = s.suggest("t1")
    # Tune calls no on_trial_result for the result that stops a trial: only on_trial_complete sees it
    s.on_trial_complete("t1", {"step": 1, "fidelity": 0.1, FINAL_KEY: False})
    stopped = study.trials[config["number"]]
    assert stopped.state == State.PRUNED and stopped.intermediate_values == {1: 0.1}
    assert len(TrialRecord.from_trial(stopped).curve) == 1 and stopped.number not in {
        b.number for b in study.best_trials
    }


def test_auto_windows_and_the_windows_they_resolve_to_are_one_variant(tmp_path):
    """At 64 px this base's ``auto`` windows are (2, 2): a pinned [2, 2] builds the same model under
    another arch id, so it is copied, not trained again; [1, 1] is another model and trains."""
    from radio_nas.models import resolve_config

    assert resolve_config({**TINY, "window_sizes": "auto"}).windows_for(64, 64) == (2, 2)
    space, study, results = setup(
        tmp_path,
        parameters={"arch.window_sizes": "choice(auto, [2, 2], [1, 1])"},
        sampler={"name": "grid", "seed": 0},
        budget={"trials": 3},
    )
    s = StudySearcher(space, study, results, trials=3, progress=None)
    for i in range(4):
        config = s.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        s.on_trial_complete(f"t{i}", final_result(0.4 + i / 10))
    assert "every point" in s.stats().stop_reason
    records = {t.number: TrialRecord.from_trial(t) for t in study.trials}
    trained = {n: r for n, r in records.items() if r.duplicate_of is None}
    copies = {n: r for n, r in records.items() if r.duplicate_of is not None}
    assert trained_count(study) == 2 and len(trained) == 2 and len(copies) == 1
    [(number, copy)] = copies.items()
    original = records[copy.duplicate_of]

    def label(arch):
        return arch["window_sizes"] if arch["window_sizes"] == "auto" else tuple(arch["window_sizes"])

    assert {label(copy.arch), label(original.arch)} == {"auto", (2, 2)}  # the two labels of one model
    assert copy.arch_id != original.arch_id  # each keeps its own architecture and id
    assert copy.arch_id == resolve_config(dict(copy.arch)).id
    assert study.trials[number].values == study.trials[copy.duplicate_of].values
    assert (1, 1) in {label(r.arch) for r in trained.values()}
