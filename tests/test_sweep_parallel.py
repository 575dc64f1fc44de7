"""Trials side by side: the pause gate (a trial stops at a step boundary while the driver times a
latency; a trial blocked in report counts as stopped; a trial that does not stop is reported),
paused time left out of trial clocks, a variant re-proposed while its original trains, and two
real Ray trials side by side with the GP sampler proposing while one runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

from radio_nas.search import timing as timing_module
from radio_nas.search.gate import PauseGate, TrialGate
from radio_nas.search.optuna_study import default_storage, open_study
from radio_nas.search.searcher import StudySearcher
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY

REPO = Path(__file__).resolve().parents[1]
TINY = {"preset": "xt", "width": 16, "depths": [1, 1, 1, 1], "head_dim": 16}
State = optuna.trial.TrialState


class _Trainer(threading.Thread):
    """A trial's step loop on the trial side of the gate: counts steps, pauses between them."""

    def __init__(self, folder: Path, number: int, step_s: float = 0.01, hold: bool = False):
        super().__init__(daemon=True)
        self.gate = TrialGate(folder, number, hold=hold)
        self.steps, self.step_s, self.stop_flag = 0, step_s, threading.Event()

    def run(self) -> None:
        self.gate.start()
        while not self.stop_flag.is_set():
            self.gate.pause()
            self.stop_flag.wait(self.step_s)  # "computing" (a stop ends the step at once)
            self.steps += 1
        self.gate.stop()


def _until(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    """Whether `condition` holds within `within_s` (polled; a loaded CI machine may be slow to
    schedule a thread); a check that something does NOT happen passes a short `within_s`."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(0.005)
    return True


def _steps_soon(trainer: _Trainer, within_s: float = 5.0) -> bool:
    """Whether `trainer` takes a step within `within_s`."""
    return _until(lambda: trainer.steps > 0, within_s)


def test_the_gate_holds_a_training_trial_at_a_step_boundary(tmp_path):
    driver = PauseGate(tmp_path)
    trial = _Trainer(tmp_path, 3)
    trial.start()
    assert _until(lambda: trial.steps >= 3)
    with driver.pause([3], wait_s=5.0) as paused:
        assert paused
        held = trial.steps
        # twenty steps' worth: none may happen while the gate is up
        assert not _until(lambda: trial.steps != held, within_s=0.2)
        assert driver.busy([3]) == []
    assert _until(lambda: trial.steps > held) and not driver.raised  # trains again once the gate is down
    trial.stop_flag.set()
    trial.join(5)
    assert trial.gate.paused_s >= 0.2 and driver.busy([3]) == []


def test_a_trial_blocked_in_report_counts_as_stopped_and_waits_for_the_gate(tmp_path):
    # Ray's function trainable blocks in tune.report until the driver takes the result; the driver
    # may be the one waiting at the gate: the trial must not be waited for, nor run on under it.
    driver = PauseGate(tmp_path)
    gate = TrialGate(tmp_path, 7)
    gate.start()
    consumed, after_report = threading.Event(), threading.Event()

    def report() -> None:
        with gate.idle():
            consumed.wait(5)  # blocked until "the driver" takes the result
        after_report.set()  # the next step would start here

    worker = threading.Thread(target=report, daemon=True)
    worker.start()
    assert _until(lambda: driver.busy([7]) == [])  # in its blocking report
    t0 = time.monotonic()
    with driver.pause([7], wait_s=5.0) as paused:
        assert paused and time.monotonic() - t0 < 1.0  # no deadlock, no timeout
        consumed.set()  # the report returns while the gate is up
        assert not after_report.wait(0.1)  # ... and the trial stays stopped
    worker.join(5)
    assert after_report.is_set()
    gate.stop()


def test_a_trial_that_does_not_stop_is_reported_and_the_gate_comes_down(tmp_path):
    driver = PauseGate(tmp_path)
    busy = _Trainer(tmp_path, 1, step_s=30.0)  # one long step (e.g. building the teacher cache)
    busy.start()
    assert _until(lambda: driver.ready([1]))  # past its start: at its first step
    t0 = time.monotonic()
    with driver.pause([1], wait_s=0.2) as paused:
        assert not paused
    assert 0.2 <= time.monotonic() - t0 < 2.0 and not driver.raised and driver.busy([1]) == [1]
    busy.gate.stop()
    # a driver that died with the gate up does not stop a resumed sweep's trials
    driver.raise_()
    assert not PauseGate(tmp_path).raised


def test_a_trial_still_starting_is_waited_for(tmp_path):
    # Launched, its worker booting (no marker yet), then importing torch and building its teachers
    # (busy, no step boundary yet): it computes, so no latency may be timed over it.
    driver = PauseGate(tmp_path)
    assert driver.busy([4]) == [4] and not driver.ready([4])
    with driver.pause([4], wait_s=0.1) as paused:
        assert not paused
    trial = _Trainer(tmp_path, 4, step_s=0.01)
    trial.gate.start()  # the trainable's first line
    assert driver.busy([4]) == [4] and not driver.ready([4])
    trial.start()  # its step loop: the first boundary marks it ready
    assert _until(lambda: driver.ready([4]))
    with driver.pause([4], wait_s=5.0) as paused:
        assert paused
    trial.stop_flag.set()
    trial.join(5)
    assert driver.busy([4]) == [] and driver.ready([4])  # an ended trial is never waited for


def test_paused_seconds_are_left_out_of_the_trial_clock():
    from radio_nas.distill import load_pipeline, run_trial

    pipeline = load_pipeline(
        REPO / "pipelines/distill_cpu.yaml",
        {
            "steps": 4,
            "batch_size": 4,
            "resolution": 64,
            "data.train_size": 16,
            "data.eval_size": 8,
            "eval.every": 2,
            "eval.size": 4,
            "eval.knn": False,
        },
    )
    run_trial(pipeline, TINY)  # the teacher cache, so both runs below only train
    calls: list[float] = []

    def pause() -> float:
        time.sleep(0.1)
        calls.append(0.1)
        return 0.1

    t0 = time.perf_counter()
    result = run_trial(pipeline, TINY, pause=pause)
    outer = time.perf_counter() - t0
    assert result.ok and len(calls) >= pipeline.steps  # at least every step boundary
    assert result.paused_s == pytest.approx(0.1 * len(calls))
    assert result.wall_s == pytest.approx(outer - result.paused_s, abs=0.05)
    assert result.seconds <= result.wall_s and result.fidelity_curve[-1].seconds <= result.wall_s


def _setup(tmp_path: Path, **extra):
    from radio_nas.search.space import load_space

    data = {
        "name": "par",
        "pipeline": {"path": str(REPO / "pipelines/distill_cpu.yaml"), "overrides": {"steps": 2, "resolution": 64}},
        "base": TINY,
        "parameters": {"arch.width": "choice(16, 24, 32)"},
        "latency": {"runs": 3, "warmup": 1, "threads": 1},
        "objectives": [
            {"metric": "fidelity", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "sampler": {"name": "random", "seed": 0},
        **extra,
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    space = load_space(path)
    results = tmp_path / "results"
    return space, open_study(space, results, default_storage(results)), results


def _final(fidelity: float = 0.5) -> dict:
    run = {"status": "ok", "fidelity": fidelity, "loss_curve": [1.0], "steps": 2, "wall_s": 1.0, "weights_path": None}
    return {"fidelity": fidelity, FINAL_KEY: True, RESULT_KEY: json.dumps(run)}


def test_a_latency_waits_for_a_busy_trial_then_is_timed_anyway_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    # a latency limit: every variant is timed before it starts (the driver holds it)
    space, study, results = _setup(tmp_path, constraints={"max_latency_ms": 1e4})
    gate = tmp_path / "gate"
    s = StudySearcher(space, study, results, trials=5, concurrency=2, progress=None, pause_gate=gate)
    first = s.suggest("t0")  # nothing runs: timed at once
    assert first["gate"] == str(gate)
    running = TrialGate(gate, first["number"])
    running.start()
    running.pause()  # past its start; then it trains and never reaches a step boundary again
    monkeypatch.setattr(timing_module, "_GATE_TRY_S", 0.1)
    assert s.suggest("t1") is None  # not now: the variant waits, the gate is down again
    assert not PauseGate(gate).raised and s._held is not None
    waiting = s._held[0].number
    monkeypatch.setattr(timing_module, "_GATE_GIVE_UP_S", 0.0)
    # a failed try lets the paused trials train for _GATE_TRY_S before the next: not now, then timed
    # anyway (waited long enough), recorded as such
    asked: list = []
    assert _until(lambda: asked.append(s.suggest("t1")) or asked[-1] is not None)
    second = asked[-1]
    assert second["number"] == waiting
    rec = study.trials[waiting].user_attrs
    assert rec["latency_quiet"] is False and rec["latency_ms"] > 0
    assert study.trials[first["number"]].user_attrs["latency_quiet"] is True
    cached = list((tmp_path / "cache" / "latency").glob("latency-*.json"))
    assert len(cached) == 1  # the first one only: a latency that was not quiet is never cached
    assert s.stats().gate_pauses == 1


def test_a_latency_no_limit_reads_is_timed_while_its_variant_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    space, study, results = _setup(tmp_path)  # latency is an objective only: nothing waits for it
    gate = tmp_path / "gate"
    s = StudySearcher(space, study, results, trials=3, concurrency=2, progress=None, pause_gate=gate)
    first, second = s.suggest("t0"), s.suggest("t1")  # both start at once, their latencies untimed
    assert first is not None and second is not None and s.stats().gate_pauses == 0
    assert first["hold"] and second["hold"]
    assert study.trials[first["number"]].user_attrs.get("latency_ms") is None
    assert study.trials[first["number"]].user_attrs["gmacs"] > 0  # what a constraint may read is known
    trainers = [_Trainer(gate, c["number"], hold=True) for c in (first, second)]
    trainers[0].start()
    assert _until(lambda: PauseGate(gate).ready([first["number"]]))  # holding at its first step boundary
    assert not _steps_soon(trainers[0], within_s=0.05)
    # the second trial is starting: nothing is timed over it, and the first is not kept waiting
    assert s.suggest("t2") is None
    assert s.stats().gate_pauses == 0 and not PauseGate(gate).raised
    assert _steps_soon(trainers[0])
    trainers[1].start()
    assert _until(lambda: PauseGate(gate).ready([second["number"]]))
    assert not _steps_soon(trainers[1], within_s=0.05)  # held until timed
    assert s.suggest("t2") is None  # every slot taken; both latencies timed behind the gate
    assert s.stats().gate_pauses == 2
    assert _steps_soon(trainers[1])  # released
    for c in (first, second):
        rec = study.trials[c["number"]].user_attrs
        assert rec["latency_ms"] > 0 and rec["latency_quiet"] is True
    for t in trainers:
        t.stop_flag.set()
        t.join(5)
    s.on_trial_complete("t0", _final(0.4))
    done = study.trials[first["number"]]
    assert done.state == State.COMPLETE and done.values[1] == done.user_attrs["latency_ms"]


def test_a_trial_that_ends_untimed_is_timed_before_it_is_told(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    space, study, results = _setup(tmp_path)
    gate = tmp_path / "gate"
    s = StudySearcher(space, study, results, trials=3, concurrency=2, progress=None, pause_gate=gate)
    first, second = s.suggest("t0"), s.suggest("t1")
    t0 = time.monotonic()
    s.on_trial_complete("t0", _final(0.4))  # #second never started: timed at once, not waited for
    assert time.monotonic() - t0 < 4.0
    done = study.trials[first["number"]]
    assert done.state == State.COMPLETE and done.user_attrs["latency_quiet"] is False
    assert done.values[1] == done.user_attrs["latency_ms"] > 0
    s.on_trial_complete("t1", _final(0.3))  # nothing else runs: quiet
    assert study.trials[second["number"]].user_attrs["latency_quiet"] is True


def test_a_variant_proposed_while_its_original_trains_waits_for_its_outcome(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    space, study, results = _setup(tmp_path, budget={"trials": 3})
    s = StudySearcher(space, study, results, trials=3, concurrency=2, progress=None, pause_gate=tmp_path / "gate")
    first = s.suggest("t0")
    study.enqueue_trial({"arch.width": first["arch"]["width"]})  # the sampler proposes it again
    second = s.suggest("t1")  # the free slot gets another variant; the copy waits
    assert second["arch"]["width"] != first["arch"]["width"]
    started = {first["number"], second["number"]}
    waiting = [t for t in study.trials if t.state == State.RUNNING and t.number not in started]
    assert len(waiting) == 1 and not (results / "trials" / str(waiting[0].number)).exists()
    s.on_trial_complete("t0", _final(0.41))
    copy = study.trials[waiting[0].number]
    assert copy.state == State.COMPLETE and copy.user_attrs["duplicate_of"] == first["number"]
    assert copy.values == study.trials[first["number"]].values
    s.on_trial_complete("t1", _final(0.3))
    assert s.stats().copies == 1 and s.stats().done == 2


def test_a_waiting_copy_of_a_failed_original_fails_and_close_requeues_unfinished_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))
    space, study, results = _setup(tmp_path)
    s = StudySearcher(space, study, results, trials=5, concurrency=2, progress=None, pause_gate=tmp_path / "gate")
    first = s.suggest("t0")
    study.enqueue_trial({"arch.width": first["arch"]["width"]})
    second = s.suggest("t1")
    s.on_trial_complete("t0", None, error=True)
    failed = [t for t in study.trials if t.user_attrs.get("duplicate_of") == first["number"]]
    assert len(failed) == 1 and failed[0].state == State.FAIL
    study.enqueue_trial({"arch.width": second["arch"]["width"]})
    assert s.suggest("t2") is not None  # the copy of #second waits, a third variant starts
    copy = next(
        t
        for t in study.get_trials(states=(State.RUNNING,))
        if t.number != second["number"] and t.params["arch.width"] == second["arch"]["width"]
    )
    s.close()  # the sweep stops with #second still running: its waiting copy is queued again
    assert study.trials[copy.number].state == State.FAIL
    queued = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(State.WAITING,))]
    assert {"arch.width": second["arch"]["width"]} in queued


@pytest.mark.slow
def test_two_real_ray_trials_side_by_side_with_gp_and_the_gate(tmp_path, monkeypatch):
    from radio_nas.search.sweep import run_sweep

    monkeypatch.setenv("RADIO_NAS_CACHE", str(tmp_path / "cache"))  # fresh latency cache: every one is timed
    data = {
        "name": "side",
        "pipeline": {
            "path": str(REPO / "pipelines/distill_cpu.yaml"),
            "overrides": {
                "steps": 30,
                "batch_size": 4,
                "resolution": 64,
                "data.train_size": 16,
                "data.eval_size": 8,
                "eval.every": 10,
                "eval.size": 4,
                "eval.knn": False,
            },
        },
        "base": TINY,
        "parameters": {"arch.width": "choice(16, 24, 32)", "pipeline.optim.lr": "tag(log, interval(3e-4, 3e-3))"},
        "latency": {"runs": 5, "warmup": 1, "threads": 1},
        "objectives": [
            {"metric": "fidelity", "direction": "maximize"},
            {"metric": "latency_ms", "direction": "minimize"},
        ],
        "sampler": {"name": "gp", "seed": 0, "n_startup_trials": 2},
        "budget": {"trials": 5},
        "resources": {"cpu": 1},
        "concurrency": 2,
    }
    space = tmp_path / "side.yaml"
    space.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.chdir(tmp_path)  # a relative results folder, as `radio-nas sweep` makes by default
    results = tmp_path / "results"
    out = run_sweep(space, results_dir="results", num_cpus=2, progress=None)
    assert out["counts"].get("ok") == 5 and out["trained"] == 5 and out["concurrency"] == 2
    trials = [t for t in optuna.load_study(study_name=out["study"], storage=out["storage"]).trials]
    ok = [t for t in trials if t.user_attrs.get("status") == "ok" and t.user_attrs.get("duplicate_of") is None]
    spans = sorted((t.datetime_start, t.datetime_complete) for t in ok)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # some trials overlapped
    assert out["gate_pauses"] >= 1  # a latency was timed while a trial ran, behind the gate
    assert all(t.user_attrs["latency_quiet"] is True for t in ok)
    for t in ok:  # the trial clock leaves pauses out
        m = t.user_attrs["metrics"]
        assert m["paused_s"] >= 0 and m["wall_s"] > 0
    gate = results / "ray" / "pause-gate"
    assert not (gate / "raised").exists() and not list(gate.glob("busy-*"))


def test_crops_are_made_once_per_process_and_equal_the_dataset_s(monkeypatch):
    # A reused Ray worker runs trial after trial: the second trial must not decode and resize again.
    import numpy as np

    from radio_nas.distill import load_pipeline
    from radio_nas.distill.data import _CropMemo, open_dataset

    data = load_pipeline(REPO / "pipelines/distill_cpu.yaml", {"data.train_size": 16}).data
    memo, idx = _CropMemo(), np.array([5, 1, 5, 15])
    first = open_dataset(data)
    made = memo.crops(first, "train", idx, (32, 32))
    assert np.array_equal(made, first.crops("train", idx.tolist(), (32, 32)))
    second = open_dataset(data)  # the next trial's dataset

    def refuse(*args: object) -> None:
        raise AssertionError("made again")

    monkeypatch.setattr(second, "crops", refuse)
    assert np.array_equal(memo.crops(second, "train", idx, (32, 32)), made)
    other = open_dataset(
        load_pipeline(REPO / "pipelines/distill_cpu.yaml", {"data.train_size": 16, "data.seed": 1}).data
    )
    assert not np.array_equal(memo.crops(other, "train", idx, (32, 32)), made)  # other settings: other crops
