"""A Ray Tune searcher that asks an Optuna study for variants and tells it the outcome.

Ray's own ``OptunaSearch`` cannot record infeasible or early-stopped trials faithfully (stopped
trials reach the study as COMPLETE with partial values), so this searcher drives the study with
Optuna's ask-and-tell interface itself:

* ``suggest``: ask the study, sample the space, build and validate the architecture, measure
  params / GMACs / latency and check the constraints. Every measured variant records its
  constraint values (``Trial.set_constraint``: ``max_<cost> = value / limit - 1``), so TPE,
  NSGA-II and GP learn where the infeasible region is. A variant over a limit is told COMPLETE
  with status ``infeasible`` (NSGA-II and GP only learn from COMPLETE trials; Optuna's
  ``best_trials`` and radio-nas' Pareto candidates exclude infeasible ones) and never reaches
  Tune; one the model refuses outright (no costs) is told PRUNED with a violated constraint. A
  feasible one becomes a Tune trial whose config carries the arch and pipeline.
* ``on_trial_result``: each intermediate fidelity is stored as an Optuna intermediate value at its
  step (through the storage: ``Trial.report`` refuses multi-objective studies), so the dashboard
  draws learning curves for any number of objectives.
* ``on_trial_complete``: the last result of a trial that finished carries the whole trial result:
  COMPLETE with the objective values (status ok) or FAIL with the reason. A trial whose last
  result is intermediate was stopped by the scheduler: PRUNED (status ``pruned``) with its curve.

A variant identical to one trained already (the same model as built at the pipeline's resolution,
the same pipeline, seed included: :func:`radio_nas.search.space.variant_key`; so ``window_sizes:
auto`` and the windows it resolves to are one) is told COMPLETE with that trial's values and
``duplicate_of`` instead of being trained again; one identical to a variant still training waits
(RUNNING, not trained) and gets its original's outcome when that one ends (a copy if it trained,
FAIL otherwise), while the free slot asks again.

Latency is only timed on an otherwise idle machine (running trials corrupt timings). With a pause
gate (a local sweep; :mod:`radio_nas.search.gate`) the running trials stop at a step boundary
for the timed runs only; trial clocks leave the pause out. A trial still starting (its worker
booting, importing torch, building teachers and crops) has no step boundary to stop at, so nothing
is timed until every running trial has reached one. If a trial does not stop within 5 s the
variant waits and is tried again 5 s later (the trials train meanwhile); after 5 minutes it is
timed anyway and recorded ``latency_quiet: false`` (not cached). Without a gate (a Ray cluster) an
uncached variant waits for the running trials to end.

When no constraint and no scheduler reads the latency (it is only an objective), a variant does
not wait for it: it starts once params and GMACs are known (its worker boots and builds its
teachers while the others train), holds at its first step boundary, and is timed behind the gate
as soon as every running trial is past its start, then released. A trial that ends untimed (a
failed try lets it go on) has it timed before it is told, without waiting for trials still
starting (if one is, the latency is recorded ``latency_quiet: false``).

A variant whose cost measurement raises (an absurd width: MemoryError, RuntimeError) is told FAIL at
once, never re-queued, so a resume does not crash on it again; one that kills the driver outright
stays marked ``phase: measuring``: the next resume queues it once more (the driver may have been
stopped by hand), and if it dies measuring it again, the resume after that fails it instead of
queueing it again.

Lifecycle (Ray Tune's ``Searcher``): Tune calls ``set_search_properties`` once, ``suggest`` whenever
it may start a trial (None: not now; ``FINISHED``: the sweep is over), ``on_trial_result`` per
intermediate report and ``on_trial_complete`` once per trial. The sweep then calls :meth:`close`
and reads the outcome from :meth:`stats`. Everything else is private.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from radio_nas._config import ConfigError
from radio_nas.search.copies import Variants
from radio_nas.search.costs import Costs, constraint_limits, measure_costs, stand_in_values, violations
from radio_nas.search.decisions import (
    Decision,
    Event,
    decide,
    exhausted,
    next_streak,
    optuna_state,
    queue_untried,
    streak_stop,
    trained_outcome,
)
from radio_nas.search.optuna_study import trained_count
from radio_nas.search.space import Space, variant_key
from radio_nas.search.timing import LatencyTiming, NotYet, Variant
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY
from radio_nas.study.layout import WEIGHTS_FILE, trial_dir
from radio_nas.study.record import (
    COST_METRICS,
    Status,
    TrialRecord,
    constraint_values,
    read_trials,
    write_trial,
)

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial

    from radio_nas.distill.pipeline import PipelineConfig
    from radio_nas.models import ArchConfig


TrainedHook = Callable[["Trial", TrialRecord], None]
"""Called with a trained trial (still running in Optuna, its record written) before it is told:
the sweep's PCA pictures attach themselves as artifacts this way (Optuna refuses to change a
finished trial). An exception in the hook is reported, never fatal."""


@dataclasses.dataclass(frozen=True)
class SearchStats:
    """What a searcher did, for the sweep's outcome."""

    done: int
    target: int
    counts: dict[str, int]
    copies: int
    stop_reason: str | None
    trained_wall_s: tuple[float, ...]
    """run_trial's wall time of each trial trained by this driver."""
    trial_seen_s: tuple[float, ...]
    """The same trials as the driver saw them (Ray included)."""
    gate_pauses: int = 0
    """Latencies timed with the pause gate up (running trials stopped)."""
    gate_s: float = 0.0
    """Seconds the gate was up in all (waiting for trials to stop, plus timing)."""


class StudySearcher(Searcher):
    """Ask/tell bridge between Ray Tune and an Optuna study (see the module docstring)."""

    def __init__(
        self,
        space: Space,
        study: Study,
        results_dir: Path,
        *,
        trials: int,
        wall_time_s: float | None = None,
        concurrency: int = 1,
        threads: int | None = None,
        driver_id: str | None = None,
        on_trained: TrainedHook | None = None,
        progress: Callable[[str], None] | None = print,
        pause_gate: str | Path | None = None,
    ):
        super().__init__(metric=None, mode=None)
        self._space, self._study, self._results = space, study, Path(results_dir)
        self._target, self._wall_time_s, self._concurrency = trials, wall_time_s, concurrency
        self._threads, self._driver_id, self._on_trained = threads, driver_id, on_trained
        self._progress = progress
        self._live: dict[str, Trial] = {}  # tune trial id -> optuna Trial
        self._started: dict[str, float] = {}  # tune trial id -> monotonic start
        self._curves: dict[str, list[dict[str, float]]] = {}  # tune trial id -> {step, fidelity, seconds}
        self._first_start: float | None = None
        self._started_at = time.monotonic()
        self._done_at_start = trained_count(study)
        self._trained_wall_s: list[float] = []
        self._trial_seen_s: list[float] = []
        self._infeasible_streak = 0
        self._counts = {str(s): 0 for s in (Status.OK, Status.FAILED, Status.PRUNED, Status.INFEASIBLE)}
        self._copies = 0
        self._trained_here = 0  # what the budget counts (ok, failed, pruned; not a failed measurement)
        self._stop_reason: str | None = None
        self._held: Variant | None = None  # valid, waiting for an idle device
        self._limits = constraint_limits(space.config.constraints)
        self._timing = LatencyTiming(space, pause_gate, lambda: [t.number for t in self._live.values()], self._line)
        self._variants = Variants(study)  # which variant is which, and copies waiting for an original

    # -- Tune's Searcher interface ---------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return True  # the space lives in the study; Tune's param_space stays empty

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Ray omits its FINISHED str
        if self._timing.untimed:
            self._timing.time_started()  # Tune asks at every turn of its loop, also with every slot taken
        if (
            self._stop_reason is None
            and self._wall_time_s is not None
            and time.monotonic() - self._started_at >= self._wall_time_s
        ):
            self._stop_reason = f"wall time {self._wall_time_s:.0f}s reached"
        if self._stop_reason is not None or self._done + len(self._live) >= self._target:
            return self._finished()
        if len(self._live) >= self._concurrency:
            return None
        while True:
            if self._held is None:
                if exhausted(self._study, self._space):
                    self._stop_reason = "every point of the design has been tried"
                    return self._finished()
                trial = self._study.ask()
                if self._driver_id is not None:
                    write_trial(trial, driver=self._driver_id)
                prepared = self._validate(trial)
                if prepared is None:  # rejected, or a copy of a trained one: both told already
                    if self._too_many_infeasible():
                        return self._finished()
                    continue
                self._held = (trial, *prepared)
            trial, arch_cfg, pipeline = self._held
            if self._timing.must_wait(arch_cfg, pipeline):
                return None  # timing it now would be corrupted by a running trial: they train on
            try:
                measured = self._measure(trial, arch_cfg, pipeline)
            except NotYet:
                self._timing.failed_try()
                return None  # still held: the running trials did not stop in time
            self._held = None
            self._timing.timed()
            if measured is not None:
                config, untimed = measured
                if untimed:
                    self._timing.untimed[trial_id] = (trial, arch_cfg, pipeline)
                self._live[trial_id] = trial
                self._variants.started(trial_id, variant_key(arch_cfg, pipeline))
                self._started[trial_id] = time.monotonic()
                self._curves[trial_id] = []
                self._first_start = self._first_start or self._started[trial_id]
                self._line(f"started #{trial.number}")
                return config
            if self._too_many_infeasible():
                return self._finished()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._live.get(trial_id)
        if trial is not None:
            self._on_result(trial_id, trial, result)

    def _on_result(self, trial_id: str, trial: Trial, result: dict[str, Any]) -> None:
        if result.get(FINAL_KEY):
            return
        fidelity, step = result.get("fidelity"), result.get("step")
        if fidelity is None or step is None or not math.isfinite(float(fidelity)):
            return
        seconds = time.monotonic() - self._started.get(trial_id, time.monotonic())
        curve = self._curves.setdefault(trial_id, [])
        if curve and curve[-1]["step"] == int(step):
            return  # Tune hands a stopping trial's last result in twice
        curve.append({"step": int(step), "fidelity": float(fidelity), "seconds": round(seconds, 3)})
        self._intermediate(trial, int(step), float(fidelity))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._live.pop(trial_id, None)
        if trial is None:
            return
        untimed = self._timing.untimed.pop(trial_id, None)
        if untimed is not None and not error and result and result.get(FINAL_KEY):
            self._timing.time_latency(*untimed, last_try=True)  # its values need it (see the module docstring)
        key = self._variants.ended(trial_id)
        try:
            self._complete(trial_id, trial, result, error)
        finally:
            if key is not None:
                self._resolve_pending(key, trial)

    def _complete(self, trial_id: str, trial: Trial, result: dict[str, Any] | None, error: bool) -> None:
        self._trial_seen_s.append(time.monotonic() - self._started.get(trial_id, time.monotonic()))
        final = json.loads(result[RESULT_KEY]) if result and result.get(FINAL_KEY) else None
        if error or (final is None and not result):
            self._curves.pop(trial_id, None)
            self._finish(trial, Event.FAILED, reason="the Ray worker raised (see the Ray logs of this trial)")
            return
        if final is None:  # stopped by the scheduler after an intermediate report
            assert result is not None
            self._on_result(trial_id, trial, result)  # Tune skips on_trial_result for a stopping trial
            curve = self._curves.pop(trial_id, [])
            self._finish(
                trial,
                Event.STOPPED,
                reason=f"stopped by {self._scheduler_label()} at step {result.get('step')}",
                metrics={k: result[k] for k in ("step", "train_loss", "fidelity") if k in result},
                curve=curve,
                steps=result.get("step"),
                train_seconds=curve[-1]["seconds"] if curve else None,
            )
            return
        seen = self._curves.pop(trial_id, [])
        fid, steps = final.get("fidelity"), final.get("steps")
        if (
            fid is not None
            and steps is not None
            and math.isfinite(float(fid))
            and (not seen or seen[-1]["step"] < steps)
        ):
            # the last eval travels in the final result only (the trainable never reports it twice)
            seen.append({"step": int(steps), "fidelity": float(fid), "seconds": float(final.get("wall_s") or 0.0)})
        curve = [c for c in final.pop("curve", None) or seen if isinstance(c, dict)]
        for point in curve:  # the trial's own curve, when it keeps one, is the authority
            if point.get("step") is not None and point.get("fidelity") is not None:
                self._intermediate(trial, int(point["step"]), float(point["fidelity"]))
        wp = final.get("weights_path")
        attrs: dict[str, Any] = {
            "metrics": final,
            "loss_curve": final.pop("loss_curve", None),
            "curve": curve,
            "steps": final.get("steps"),
            "train_seconds": final.get("wall_s"),
            "ray_node_id": result.get("node_id") if result else None,
            "weights_path": _relative(wp, self._results) if wp else None,
        }
        self._trained_wall_s.append(float(final.get("wall_s") or 0.0))
        record = self._record(trial)
        event, values, missing = trained_outcome(
            str(final.get("status")),
            self._space.objective_names,
            lambda name: record.metric(name) if name in COST_METRICS else final.get(name),
        )
        if event is Event.FAILED:
            reason = missing or final.get("failure_reason") or "trial failed"
            self._finish(trial, Event.FAILED, reason=reason, **attrs)
            return
        write_trial(trial, **attrs)
        if wp and self._on_trained is not None:
            try:
                self._on_trained(trial, self._record(trial))
            except Exception as exc:  # a picture must never cost a trained trial
                self._line(f"#{trial.number}: no PCA picture ({type(exc).__name__}: {exc})")
        self._finish(trial, Event.TRAINED, values=values)

    def close(self) -> None:
        """Give back a variant asked for but never started (the budget or time ran out meanwhile)."""
        import optuna

        self._timing.lower()
        waiting = [self._held[0]] if self._held is not None else []
        waiting += self._variants.drop_waiting()
        self._held = None
        for trial in waiting:
            write_trial(
                trial,
                status=Status.FAILED,
                reason="not started before the sweep stopped; its parameters were queued again",
                orphaned=True,
            )
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._study.enqueue_trial(trial.params)

    def costs_of(self, trial_id: str) -> dict[str, Any] | None:
        """The costs measured before training of a running Tune trial (for a scheduler), or None."""
        trial = self._live.get(trial_id)
        return self._record(trial).costs if trial is not None else None

    def record_curve(self, trial_id: str, curve: list[dict[str, Any]]) -> None:
        """A scheduler's curve of a trial it stops (``[{step, fidelity, seconds}]``, the trial's clock):
        recorded with the PRUNED trial instead of the one this searcher saw."""
        if trial_id in self._live:
            self._curves[trial_id] = [dict(c) for c in curve]

    @property
    def concurrency(self) -> int:
        """Trials this searcher lets run at once."""
        return self._concurrency

    def stats(self) -> SearchStats:
        return SearchStats(
            done=self._done,
            target=self._target,
            counts=dict(self._counts),
            copies=self._copies,
            stop_reason=self._stop_reason,
            trained_wall_s=tuple(self._trained_wall_s),
            trial_seen_s=tuple(self._trial_seen_s),
            gate_pauses=self._timing.pauses,
            gate_s=self._timing.seconds,
        )

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def _done(self) -> int:
        return self._done_at_start + self._trained_here

    def _scheduler_label(self) -> str:
        name = self._space.config.scheduler.name
        return name.upper() if name != "none" else "the scheduler"

    def _finished(self) -> str | None:
        """Tune's FINISHED once no trial of this driver runs any more; None (not now) before."""
        return Searcher.FINISHED if not self._live else None

    def _record(self, trial: Trial) -> TrialRecord:
        return TrialRecord.from_trial(self._study._storage.get_trial(trial._trial_id))

    def _intermediate(self, trial: Trial, step: int, value: float) -> None:
        self._study._storage.set_trial_intermediate_value(trial._trial_id, step, value)

    def _too_many_infeasible(self) -> bool:
        reason = streak_stop(self._infeasible_streak, self._space.config.budget.max_infeasible)
        if reason is not None:
            self._stop_reason = reason
            self._line(reason)
        return reason is not None

    def _validate(self, trial: Trial) -> tuple[ArchConfig, PipelineConfig] | None:
        """Sample a variant and build its configs; None when it was rejected or is a copy (told)."""

        values = self._space.sample(trial)
        write_trial(trial, seed=values.get("pipeline.seed", self._space.pipeline.seed))
        try:
            arch_cfg = self._space.arch_config(values)
            pipeline = self._space.pipeline_for(values)
            arch_cfg.check_input_size(*pipeline.size)
        except ConfigError as exc:
            write_trial(trial, arch=self._space.arch_spec(values))
            self._set_constraints(trial, {})
            self._finish(trial, Event.REJECTED, reason=f"rejected: {exc}")
            return None
        key = variant_key(arch_cfg, pipeline)
        original = self._variants.trained(pipeline).get(key)
        if original is not None:
            self._copy(trial, original, arch_cfg)
            return None
        running = self._variants.running(key, self._live)
        if running is not None:  # training now: take its outcome when it ends instead of training it twice
            write_trial(trial, arch=arch_cfg.to_dict(), arch_id=arch_cfg.id, pipeline=pipeline.to_dict())
            self._variants.wait(key, trial, arch_cfg)
            self._line(f"#{trial.number} is #{running} (still training): waits for its outcome")
            self._note(decide(Event.WAITS), trial)  # as a copy: a sampler stuck on one point must not loop forever
            return None
        return arch_cfg, pipeline

    def _resolve_pending(self, key: tuple[str, str], original: Trial) -> None:
        """The original of waiting copies ended: copy its outcome, or fail them (trials are
        deterministic, so training the copy would end the same way)."""
        import optuna

        waiting = self._variants.take_waiting(key)
        if not waiting:
            return
        frozen = self._study._storage.get_trial(original._trial_id)
        ok = frozen.state == optuna.trial.TrialState.COMPLETE and TrialRecord.from_trial(frozen).status is Status.OK
        for trial, arch_cfg in waiting:
            if ok:
                self._copy(trial, frozen, arch_cfg, streak=False)
                continue
            decision = dataclasses.replace(decide(Event.FAILED), count="copies", trained=False)
            write_trial(
                trial,
                status=decision.status,
                reason=f"identical to #{original.number}, which ended {frozen.state.name}; not trained again",
                duplicate_of=original.number,
            )
            self._study.tell(trial, state=optuna_state(decision))
            self._note(decision)
            self._line(f"#{trial.number} failed with its original #{original.number}")

    def _copy(self, trial: Trial, original: FrozenTrial, arch_cfg: ArchConfig, streak: bool = True) -> None:
        """A variant trained already (the same model at the same pipeline and seed: trials are
        deterministic): record the same outcome without training it again; budgets do not count it.
        The copy keeps its own architecture (``auto`` windows stay ``auto``)."""
        decision = decide(Event.COPY)
        if not streak:  # a waiting copy lengthened the streak when it was proposed
            decision = dataclasses.replace(decision, streak="keep")
        r = TrialRecord.from_trial(original)
        write_trial(
            trial,
            arch=arch_cfg.to_dict(),
            arch_id=arch_cfg.id,
            pipeline=r.pipeline,
            n_params=r.n_params,
            gmacs=r.gmacs,
            latency_ms=r.latency_ms,
            latency_device=r.latency_device,
            metrics=dict(r.metrics),
            curve=[dict(c) for c in r.curve],
            loss_curve=r.loss_curve,
            weights_path=r.weights_path,
            seed=r.seed,
            status=decision.status,
            reason=None,
            duplicate_of=original.number,
        )
        self._set_constraints(trial, r.costs)
        self._study.tell(trial, values=list(original.values), state=optuna_state(decision))
        self._note(decision, trial)  # counted in the progress line, not one line each

    def _measure(
        self, trial: Trial, arch_cfg: ArchConfig, pipeline: PipelineConfig
    ) -> tuple[dict[str, Any], bool] | None:
        """Measure costs, check constraints: a Tune config and whether its latency is still to be
        timed, or None (told infeasible or failed)."""

        write_trial(
            trial,
            arch=arch_cfg.to_dict(),
            arch_id=arch_cfg.id,
            pipeline=pipeline.to_dict(),
            status=Status.RUNNING,
            phase="measuring",
        )
        untimed = self._timing.is_later(arch_cfg, pipeline)
        need_latency = self._timing.needed and not untimed
        try:
            costs = measure_costs(
                arch_cfg, self._timing.settings, pipeline.size, need_latency, quiet=self._timing.quiet
            )
        except (ConfigError, MemoryError, RuntimeError, ValueError, OverflowError) as exc:
            # e.g. a width of 10^9: recorded FAIL (not queued again) so a resume never repeats it
            self._set_constraints(trial, {})
            self._finish(
                trial,
                Event.UNMEASURABLE,
                reason=f"measuring its costs raised {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            )
            return None
        write_trial(
            trial,
            n_params=costs.params,
            gmacs=costs.gmacs,
            latency_ms=costs.latency_ms,
            latency_device=costs.latency_device,
            latency_quiet=costs.latency_quiet,
            reason=None,
            weights_path=None,
            phase="training",
        )
        if costs.latency_quiet is False:
            self._line(f"#{trial.number}: latency timed while trials ran (they did not pause); not cached")
        self._set_constraints(trial, costs.as_metrics())
        broken = violations(costs, self._space.config.constraints)
        if broken:
            self._finish(
                trial, Event.INFEASIBLE, values=self._stand_in(costs), reason="constraints: " + "; ".join(broken)
            )
            return None
        self._note(decide(Event.STARTED))
        weights = trial_dir(self._results, trial.number) / WEIGHTS_FILE
        weights.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "number": trial.number,
            "arch": arch_cfg.to_dict(),
            "pipeline": pipeline.to_dict(),
            "weights_path": str(weights.resolve()) if self._space.config.save_weights else None,
            "threads": self._threads,
            "gate": self._timing.folder,
            "hold": untimed,  # at its first step boundary until its latency is timed
        }
        return config, untimed

    def _set_constraints(self, trial: Trial, costs: dict[str, Any]) -> None:
        for key, value in constraint_values(costs, self._limits).items():
            trial.set_constraint(key, value)

    def _stand_in(self, costs: Costs) -> list[float]:
        return stand_in_values(self._space.config.objectives, costs.as_metrics(), read_trials(self._study))

    def _finish(
        self,
        trial: Trial,
        event: Event,
        *,
        reason: str | None = None,
        values: list[float] | None = None,
        **fields: Any,
    ) -> None:
        decision = decide(event)
        status = decision.status
        write_trial(trial, status=status, reason=reason, **fields)
        self._study.tell(trial, values=values, state=optuna_state(decision))
        self._note(decision, trial)
        if status is Status.INFEASIBLE:
            self._line(f"#{trial.number} infeasible: {reason}")
        else:
            self._line(f"#{trial.number} {status}" + (f": {reason}" if reason and status is not Status.OK else ""))

    def _note(self, decision: Decision, trial: Trial | None = None) -> None:
        """Count a decision: its outcome counter, the budget, the streak, an untried point queued."""
        if decision.count == "copies":
            self._copies += 1
        elif decision.count is not None:
            self._counts[decision.count] += 1
        self._trained_here += decision.trained
        self._infeasible_streak = next_streak(self._infeasible_streak, decision)
        if decision.queue_untried and trial is not None:
            queue_untried(self._study, self._space, trial.number)

    def _line(self, event: str) -> None:
        if self._progress is None:
            return  # the progress line reads the whole study: skip it when nobody listens
        self._progress(f"[{self._space.name}] {self._progress_line()}  | {event}")

    def _progress_line(self) -> str:
        """done/total, running, failed, infeasible, copies, elapsed, ETA, best fidelity so far."""
        elapsed = time.monotonic() - self._started_at
        left = max(self._target - self._done, 0)
        if self._trial_seen_s and left:
            # Time per finished trial since the first one started: Ray, sampling, GMACs and latency
            # timing between trials included, concurrency accounted for by the wall clock itself.
            first = self._first_start if self._first_start is not None else time.monotonic()
            eta = _fmt((time.monotonic() - first) / len(self._trial_seen_s) * left)
        else:
            eta = "0s" if not left else "?"
        best = best_fidelity(read_trials(self._study))
        return (
            f"{self._done}/{self._target} done, {len(self._live)} running, {self._counts['failed']} failed, "
            f"{self._counts['infeasible']} infeasible, {self._copies} copies, elapsed {_fmt(elapsed)}, ETA {eta}, "
            f"best fidelity {best if best is None else format(best, '.4f')}"
        )


def best_fidelity(records: list[TrialRecord]) -> float | None:
    values = [v for r in records if r.status is Status.OK and (v := r.metric("fidelity")) is not None]
    return max(values) if values else None


def _fmt(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
