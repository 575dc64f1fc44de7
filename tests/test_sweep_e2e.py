"""End to end through real Ray Tune and real SQLite storage: the smoke sweep, a sweep killed with
SIGKILL and resumed, and a 2-node local Ray cluster. Tiny models, a few steps each."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from radio_nas.cli import main
from radio_nas.search.optuna_study import trained_count
from radio_nas.search.space import load_space
from radio_nas.search.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
State = optuna.trial.TrialState
pytestmark = pytest.mark.slow


def load(results):
    """The sweep's study, opened read-only (never creates tables under a driver that is starting)."""
    from radio_nas.study.storage import open_study as open_for_reading

    return open_for_reading(results).study


def test_smoke_sweep_end_to_end_and_rerun_is_a_no_op(tmp_path, capsys):
    results = tmp_path / "smoke"
    assert main(["sweep", str(SMOKE), "--results", str(results), "--num-cpus", "2", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # --json: one JSON object on stdout, progress on stderr
    lines = captured.err.splitlines()
    assert out["counts"].get("ok") == 3 and out["trained"] == 3 and len(out["pareto"]) >= 1
    study = load(results)
    space = load_space(SMOKE)
    assert study.metric_names == ["fidelity", "gmacs", "latency_ms"]
    attrs = study.user_attrs
    assert attrs["space_name"] == "smoke" and attrs["space_hash"] == space.hash and attrs["mode"] == "search"
    assert attrs["objectives"][0] == {"metric": "fidelity", "direction": "maximize"}
    assert attrs["pipeline"]["steps"] == 4 and attrs["results_dir"] == str(results.resolve())
    assert (results / "space.yaml").read_text() == SMOKE.read_text()
    ok = [t for t in study.trials if t.state == State.COMPLETE]
    assert len(ok) == 3 and not any(t.user_attrs.get("duplicate_of") is not None for t in ok)
    for t in ok:
        u = t.user_attrs
        assert u["status"] == "ok" and u["failure_reason"] is None
        # normalised: < 0 is worse than a constant
        assert t.values[0] == pytest.approx(u["metrics"]["fidelity"]) and t.values[0] <= 1
        assert t.values[1] == pytest.approx(u["gmacs"]) and t.values[2] == pytest.approx(u["latency_ms"])
        assert u["arch"]["width"] == t.params["arch.width"] and len(u["arch_id"]) == 12
        assert u["pipeline"]["balancing"]["method"] == t.params["pipeline.balancing.method"]
        assert u["latency_device"] and u["params"] > 0 and u["seed"] == 0 and u["loss_curve"]
        assert u["weights_path"] == f"trials/{t.number}/student.safetensors"
        assert (results / u["weights_path"]).is_file()
    assert any("3/3 done" in line for line in lines) and any("best fidelity" in line for line in lines)
    summary = "\n".join(lines)
    assert "Pareto set" in summary and f"Results: {results}" in summary
    before = [(t.number, t.datetime_complete) for t in study.trials]
    again = run_sweep(SMOKE, results_dir=results, num_cpus=2, progress=lines.append)  # nothing left to do
    assert again["trained"] == 3 and [(t.number, t.datetime_complete) for t in load(results).trials] == before


def test_sigkill_mid_sweep_then_resume(tmp_path, wait_mid_sweep):
    results = tmp_path / "killed"
    # Longer trials than the smoke default so the kill lands while one trains.
    slow = {"pipeline.overrides.steps": 30}
    cmd = [
        sys.executable,
        "-m",
        "radio_nas",
        "sweep",
        str(SMOKE),
        "--results",
        str(results),
        "--trials",
        "3",
        "--num-cpus",
        "2",
        "--set",
        "pipeline.overrides.steps=30",
    ]
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_mid_sweep(results, why=lambda: (tmp_path / "driver.log").read_text()[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        proc.wait()
    study = load(results)
    finished_before = {t.number: t.datetime_complete for t in study.trials if t.state == State.COMPLETE}
    orphans = [t.number for t in study.trials if t.state == State.RUNNING]
    assert finished_before and orphans

    out = run_sweep(SMOKE, results_dir=results, trials=3, num_cpus=2, progress=None, overrides=slow)
    study = load(results)
    assert out["trained"] == 3 and trained_count(study) == 3
    for number, completed in finished_before.items():  # kept, not re-run
        assert study.trials[number].state == State.COMPLETE and study.trials[number].datetime_complete == completed
    ok = [t for t in study.trials if t.state == State.COMPLETE and t.user_attrs.get("duplicate_of") is None]
    assert len(ok) == 3  # exactly the missing ones were run
    for number in orphans:
        t = study.trials[number]
        assert t.state == State.FAIL and t.user_attrs["orphaned"]
        if t.user_attrs.get("params") is not None:  # it had started training: its params ran again
            assert any(o.params == t.params for o in ok if o.number > max(finished_before))


def test_two_node_ray_cluster(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        # Two objectives without latency: no trial waits for an idle device, so two run at once.
        out = run_sweep(
            SMOKE,
            results_dir=tmp_path / "cluster",
            trials=4,
            concurrency=2,
            address=cluster.address,
            progress=None,
            overrides={
                "objectives": [
                    {"metric": "fidelity", "direction": "maximize"},
                    {"metric": "gmacs", "direction": "minimize"},
                ]
            },
        )
        assert out["trained"] == 4 and out["counts"].get("ok", 0) >= 4
        nodes = {
            t.user_attrs["ray_node_id"]
            for t in load(tmp_path / "cluster").trials
            if t.state == State.COMPLETE and t.user_attrs.get("duplicate_of") is None
        }
        assert len(nodes) == 2, "trials should have been spread over both nodes"
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_asha_stopped_trials_are_pruned_never_complete(tmp_path):
    over = {
        "objectives": [{"metric": "fidelity", "direction": "maximize"}],
        "scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 2},
        "pipeline.overrides.steps": 8,
    }  # smoke evaluates every 2 steps: rungs at 2, 4
    out = run_sweep(SMOKE, results_dir=tmp_path / "asha", trials=5, num_cpus=2, progress=None, overrides=over)
    study = load(tmp_path / "asha")
    assert out["trained"] == 5
    pruned = [t for t in study.trials if t.user_attrs["status"] == "pruned"]
    assert pruned, "with these seeds ASHA stops the fifth trial at its first rung"
    for t in study.trials:
        if t.state == State.COMPLETE:
            assert t.user_attrs["status"] == "ok" and t.user_attrs["metrics"]["steps"] == 8  # fully trained only
    for t in pruned:
        assert t.state == State.PRUNED and "ASHA" in t.user_attrs["failure_reason"]
        assert t.intermediate_values and max(t.intermediate_values) < 8  # its curve, cut short
    assert all(b.user_attrs["status"] == "ok" for b in study.best_trials)
