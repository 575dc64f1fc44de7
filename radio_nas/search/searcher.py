"""A Ray Tune searcher that asks an Optuna study for variants and tells it the outcome.

Ray's own ``OptunaSearch`` cannot record infeasible or ASHA-stopped trials faithfully (stopped
trials reach the study as COMPLETE with partial values), so this searcher drives the study with
Optuna's ask-and-tell interface itself:

* ``suggest``: ask the study, sample the space, build and validate the architecture, measure
  params / GMACs / latency and check the constraints. Infeasible variants are told PRUNED
  (status "infeasible") with their measured values and never reach Tune; the next variant is
  asked at once. A feasible one becomes a Tune trial whose config carries the arch and pipeline.
* ``on_trial_complete``: the last result of a trial that finished carries the full run_trial
  dict: COMPLETE with the objective values (status ok) or FAIL with the reason. A trial whose
  last result is intermediate was stopped by the scheduler: PRUNED (status "pruned").

A variant identical to one trained already (same arch id, same pipeline id, seed included) is
told COMPLETE with that trial's values and ``duplicate_of`` instead of being trained again.

Latency is only measured while no trial of this sweep runs (a busy device corrupts timings):
an uncached variant waits for the running trials to finish.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from ray.tune.search import Searcher

from radio_nas._config import ConfigError
from radio_nas.search.costs import latency_is_cached, measure_costs, violations
from radio_nas.search.space import Space
from radio_nas.search.study import trained_count
from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY


class StudySearcher(Searcher):
    """Ask/tell bridge between Ray Tune and an Optuna study (see module docstring)."""

    def __init__(self, space: Space, study: Any, results_dir: Path, *, trials: int,
                 wall_time_s: float | None = None, concurrency: int = 1, threads: int | None = None,
                 progress: Callable[[str], None] | None = print):
        super().__init__(metric=None, mode=None)
        self.space, self.study, self.results_dir = space, study, Path(results_dir)
        self.target, self.wall_time_s, self.concurrency = trials, wall_time_s, concurrency
        self.threads = threads
        self.progress = progress or (lambda line: None)
        self.live: dict[str, Any] = {}  # tune trial id -> optuna Trial
        self.started: dict[str, float] = {}  # tune trial id -> monotonic start
        self.first_start: float | None = None
        self.started_at = time.monotonic()
        self.done_at_start = trained_count(study)
        self.trained_here: list[float] = []  # run_trial wall_s of trials trained by this driver
        self.trial_seconds: list[float] = []  # the same trials as the driver saw them (Ray included)
        self.infeasible_streak = 0
        self.counts = {"ok": 0, "failed": 0, "pruned": 0, "infeasible": 0}
        self.copies = 0  # proposals identical to a trained variant, recorded without training
        self._pca_image: Any = None
        self._pca_teachers: dict[str, Any] = {}  # teachers built once per sweep for the pictures
        self.stop_reason: str | None = None
        self.held: tuple[Any, Any, Any] | None = None  # asked, valid, waiting for an idle device
        needs = set(space.objective_names) | ({"latency_ms"} if space.config.constraints.max_latency_ms else set())
        self.need_latency = "latency_ms" in needs

    # -- Tune's Searcher interface ---------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the space lives in the study; Tune's param_space stays empty

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.stop_reason is None and self.wall_time_s is not None \
                and time.monotonic() - self.started_at >= self.wall_time_s:
            self.stop_reason = f"wall time {self.wall_time_s:.0f}s reached"
        if self.stop_reason is not None or self.done + len(self.live) >= self.target:
            return Searcher.FINISHED if not self.live else None
        if len(self.live) >= self.concurrency:
            return None
        while True:
            if self.held is None:
                if self._exhausted():
                    self.stop_reason = "every point of the design has been tried"
                    return Searcher.FINISHED if not self.live else None
                trial = self.study.ask()
                prepared = self._validate(trial)
                if prepared is None:  # rejected (told PRUNED) or a copy of a trained one (told COMPLETE)
                    if self._too_many_infeasible():
                        return Searcher.FINISHED if not self.live else None
                    continue
                self.held = (trial, *prepared)
            trial, arch_cfg, pipeline = self.held
            if self.need_latency and self.live and not latency_is_cached(
                    arch_cfg, self.space.config.latency, pipeline.size):
                return None  # timing it now would be corrupted by the running trial: wait
            self.held = None
            config = self._measure(trial, arch_cfg, pipeline)
            if config is not None:
                self.live[trial_id] = trial
                self.started[trial_id] = time.monotonic()
                self.first_start = self.first_start or self.started[trial_id]
                self._line(f"started #{trial.number}")
                return config
            if self._too_many_infeasible():
                return Searcher.FINISHED if not self.live else None

    def close(self) -> None:
        """Give back a variant asked for but never started (the budget or time ran out meanwhile)."""
        import optuna

        if self.held is not None:
            trial = self.held[0]
            self.held = None
            self._set(trial, status="failed", failure_reason="not started before the sweep stopped; "
                      "its parameters were queued again", orphaned=True)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.study.enqueue_trial(trial.params)

    def _exhausted(self) -> bool:
        """Ablations run only their queued points; a grid has a fixed number of points."""
        import optuna

        if self.space.config.mode == "ablation":
            return not self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if self.space.config.sampler.name == "grid":
            size = self.space.grid_size() or 0
            asked = [t for t in self.study.get_trials(deepcopy=False)
                     if t.state != optuna.trial.TrialState.WAITING and not t.user_attrs.get("orphaned")]
            queued = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            return len(asked) >= size and not queued
        return False

    def _too_many_infeasible(self) -> bool:
        if self.infeasible_streak >= self.space.config.budget.max_infeasible:
            self.stop_reason = (f"{self.infeasible_streak} infeasible or already-trained variants in a row "
                                "(budget.max_infeasible); loosen the constraints or widen the space")
            self._line(self.stop_reason)
            return True
        return False

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self.live.get(trial_id)
        if trial is not None:
            self.on_trial_result_for(trial, result)

    def on_trial_result_for(self, trial: Any, result: dict) -> None:
        """Intermediate fidelity -> the Optuna trial's curve (single objective only: Optuna keeps
        intermediate values for one objective)."""
        if len(self.space.config.objectives) != 1 or result.get(FINAL_KEY):
            return
        if result.get("fidelity") is not None and result.get("step") is not None:
            trial.report(float(result["fidelity"]), int(result["step"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        self.trial_seconds.append(time.monotonic() - self.started.pop(trial_id, time.monotonic()))
        State = optuna.trial.TrialState
        final = json.loads(result[RESULT_KEY]) if result and result.get(FINAL_KEY) else None
        if error or (final is None and not result):
            self._finish(trial, "failed", State.FAIL, reason="the Ray worker raised (see the Ray logs of this trial)")
            return
        if final is None:  # stopped by the scheduler after an intermediate report
            step = result.get("step") if result else None
            self.on_trial_result_for(trial, result or {})  # Tune skips on_trial_result for a stopping one
            self._finish(trial, "pruned", State.PRUNED, reason=f"stopped by ASHA at step {step}",
                         extra={"metrics": _slim(result or {})})
            return
        curve = final.pop("loss_curve", None)
        attrs = {"metrics": final, "loss_curve": curve, "ray_node_id": result.get("node_id")}
        wp = final.get("weights_path")
        attrs["weights_path"] = _relative(wp, self.results_dir) if wp else None
        self.trained_here.append(float(final.get("wall_s") or 0.0))
        if final.get("status") != "ok":
            self._finish(trial, "failed", State.FAIL, reason=final.get("failure_reason") or "trial failed",
                         extra=attrs)
            return
        costs = trial.user_attrs  # measured before training
        values = []
        for name in self.space.objective_names:
            value = final.get(name) if name not in ("params", "gmacs", "latency_ms") else costs.get(name)
            if value is None or not math.isfinite(float(value)):
                self._finish(trial, "failed", State.FAIL, reason=f"objective {name} is missing or not finite",
                             extra=attrs)
                return
            values.append(float(value))
        if wp:
            self._attach_pca(trial, Path(wp))
        self._finish(trial, "ok", State.COMPLETE, values=values, extra=attrs)

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return self.done_at_start + self.counts["ok"] + self.counts["failed"] + self.counts["pruned"]

    def _validate(self, trial: Any) -> tuple[Any, Any] | None:
        """Sample a variant and build its configs; None (told PRUNED "infeasible") if rejected."""
        import optuna

        values = self.space.sample(trial)
        trial.set_user_attr("seed", values.get("pipeline.seed", self.space.pipeline.seed))
        try:
            arch_cfg = self.space.arch_config(values)
            pipeline = self.space.pipeline_for(values)
            arch_cfg.check_input_size(*pipeline.size)
        except ConfigError as exc:
            self._set(trial, arch=self.space.arch_spec(values), arch_id=None, params=None, gmacs=None,
                      latency_ms=None, latency_device=None, weights_path=None)
            self._finish(trial, "infeasible", optuna.trial.TrialState.PRUNED, reason=f"rejected: {exc}")
            return None
        original = self._trained().get((arch_cfg.id, pipeline.id))
        if original is not None:
            self._copy(trial, original)
            return None
        return arch_cfg, pipeline

    def _trained(self) -> dict[tuple[str, str], Any]:
        """(arch id, pipeline id) -> the COMPLETE trial that trained it (not a copy)."""
        from radio_nas._config import stable_id

        out = {}
        for t in self.study.get_trials(deepcopy=False):
            u = t.user_attrs
            if t.state.name == "COMPLETE" and u.get("status") == "ok" and u.get("duplicate_of") is None \
                    and u.get("arch_id") and isinstance(u.get("pipeline"), dict):
                out.setdefault((u["arch_id"], stable_id(u["pipeline"])), t)
        return out

    def _copy(self, trial: Any, original: Any) -> None:
        """A variant trained already (same arch, same pipeline and seed: trials are deterministic):
        record the same outcome without training it again; budgets do not count it."""
        import optuna

        keep = ("arch", "arch_id", "pipeline", "params", "gmacs", "latency_ms", "latency_device", "metrics",
                "loss_curve", "weights_path", "seed")
        self._set(trial, **{k: original.user_attrs.get(k) for k in keep})
        self._set(trial, status="ok", failure_reason=None, duplicate_of=original.number)
        self.study.tell(trial, values=list(original.values), state=optuna.trial.TrialState.COMPLETE)
        self.infeasible_streak += 1  # a sampler that only proposes known points has nothing left to try
        self.copies += 1  # counted in the progress line, not one line each
        self._queue_untried(trial.number)

    def _queue_untried(self, salt: int) -> None:
        """After a copy, queue a random variant not tried yet (finite spaces): a model-based sampler
        that keeps proposing its favourite would otherwise spend the sweep re-proposing it."""
        import random

        import optuna

        grid = self.space.grid()
        if not grid or any(p.when for p in self.space.sampled) or self.space.config.mode == "ablation":
            return
        if self.space.config.sampler.name == "grid":
            return  # the grid proposes every point once; a queued point would take a grid slot (point missed)
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
            return
        tried = {tuple(sorted(t.params.items())) for t in trials if t.params}
        rng = random.Random(f"{self.space.config.sampler.seed}-{salt}")
        for _ in range(200):
            candidate = {name: rng.choice(values) for name, values in grid.items()}
            if tuple(sorted(candidate.items())) not in tried:
                self.study.enqueue_trial(candidate)
                return

    def _measure(self, trial: Any, arch_cfg: Any, pipeline: Any) -> dict[str, Any] | None:
        """Measure costs, check constraints: a Tune config, or None (told PRUNED "infeasible")."""
        import optuna

        costs = measure_costs(arch_cfg, self.space.config.latency, pipeline.size, self.need_latency)
        number = trial.number
        self._set(trial, arch=arch_cfg.to_dict(), arch_id=arch_cfg.id, pipeline=pipeline.to_dict(),
                  params=costs.params, gmacs=costs.gmacs, latency_ms=costs.latency_ms,
                  latency_device=costs.latency_device, status="running", failure_reason=None,
                  weights_path=None)
        broken = violations(costs, self.space.config.constraints)
        if broken:
            self._finish(trial, "infeasible", optuna.trial.TrialState.PRUNED,
                         reason="constraints: " + "; ".join(broken))
            return None
        self.infeasible_streak = 0
        weights = self.results_dir / "trials" / str(number) / "student.safetensors"
        weights.parent.mkdir(parents=True, exist_ok=True)
        return {"number": number, "arch": arch_cfg.to_dict(), "pipeline": pipeline.to_dict(),
                "weights_path": str(weights.resolve()) if self.space.config.save_weights else None,
                "threads": self.threads}

    def _attach_pca(self, trial: Any, weights: Path) -> None:
        """The trained student's PCA picture (beside its teachers) as an artifact of the Optuna trial,
        while it is still running: Optuna refuses to change a finished trial."""
        from radio_nas.report.pca import DEFAULT_IMAGE, load_image
        from radio_nas.report.report import attach_artifact, trial_pca_panel

        try:
            if self._pca_image is None:
                self._pca_image = load_image(DEFAULT_IMAGE)
            path, _ = trial_pca_panel(trial.user_attrs["arch"], weights, trial.user_attrs.get("pipeline") or {},
                                      self._pca_image, weights.parent / "pca.png",
                                      f"{self.space.name} trial {trial.number}", self._pca_teachers)
            attach_artifact(trial, path, self.results_dir)
        except Exception as exc:  # noqa: BLE001  (a picture must never cost a trained trial)
            self._line(f"#{trial.number}: no PCA picture ({type(exc).__name__}: {exc})")

    def _set(self, trial: Any, **attrs: Any) -> None:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)

    def _finish(self, trial: Any, status: str, state: Any, *, reason: str | None = None,
                values: list[float] | None = None, extra: dict[str, Any] | None = None) -> None:
        self._set(trial, status=status, failure_reason=reason, **(extra or {}))
        self.study.tell(trial, values=values, state=state)
        self.counts[status] += 1
        if status == "infeasible":
            self.infeasible_streak += 1
            self._line(f"#{trial.number} infeasible: {reason}")
        else:
            self._line(f"#{trial.number} {status}" + (f": {reason}" if reason and status != "ok" else ""))

    def _line(self, event: str) -> None:
        self.progress(f"[{self.space.name}] {progress_line(self)}  | {event}")


def progress_line(s: StudySearcher) -> str:
    """done/total, running, failed, infeasible, copies, elapsed, ETA, best fidelity so far."""
    elapsed = time.monotonic() - s.started_at
    left = max(s.target - s.done, 0)
    if s.trial_seconds and left:
        # Time per finished trial since the first one started: Ray, sampling, GMACs and latency
        # timing between trials included, concurrency accounted for by the wall clock itself.
        first = min(s.started.values(), default=time.monotonic()) if s.first_start is None else s.first_start
        per = (time.monotonic() - first) / len(s.trial_seconds)
        eta = _fmt(per * left)
    else:
        eta = "0s" if not left else "?"
    best = best_fidelity(s.study)
    return (f"{s.done}/{s.target} done, {len(s.live)} running, {s.counts['failed']} failed, "
            f"{s.counts['infeasible']} infeasible, {s.copies} copies, elapsed {_fmt(elapsed)}, ETA {eta}, "
            f"best fidelity {best if best is None else format(best, '.4f')}")


def best_fidelity(study: Any) -> float | None:
    values = [t.user_attrs.get("metrics", {}).get("fidelity") for t in study.get_trials(deepcopy=False)
              if t.user_attrs.get("status") == "ok"]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _slim(result: dict) -> dict:
    keep = ("step", "train_loss", "fidelity")
    return {k: result[k] for k in keep if k in result}
