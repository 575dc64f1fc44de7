"""One short multi-teacher distillation trial: the unit of work of every sweep.

    from radio_nas.distill import load_pipeline, run_trial
    result = run_trial(load_pipeline("pipelines/distill_cpu.yaml"), "t", report=print)
    result.status, result.fidelity, result.fidelity_curve[-1], result.seconds
    json.dumps(result.to_dict())     # flat, strict JSON

Trains the student plus per-teacher adaptors for ``pipeline.steps`` on the seeded crop stream
against cached teacher outputs, calls ``report(metrics)`` at every multiple of ``eval.every`` (with
an evaluation on held-out crops, so schedulers such as ASHA can stop it; ``metrics`` has ``step``,
``seconds`` and ``fidelity``), then evaluates on all held-out crops. The result is a frozen
:class:`TrialResult` carrying the learning curve (``fidelity_curve``: step, fidelity, seconds).
Training failures (non-finite loss, any exception) end the trial with ``status: failed``
and a reason; only configuration errors raise, before training starts.

``pause`` (a sweep running trials side by side passes one) is called at every step boundary and
between evaluation batches; it blocks while the driver times a latency and returns the seconds it
waited, which the trial's clock, curve and ``wall_s`` leave out (``paused_s`` records them).
Crops come from :func:`radio_nas.distill.data.kept_crops`: the next trial in a reused Ray worker
does not decode and resize them again.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from radio_nas._config import ConfigError
from radio_nas.distill import cache as cache_mod
from radio_nas.distill.adaptors import TeacherAdaptor, TermStart
from radio_nas.distill.balancing import make_balancer
from radio_nas.distill.data import CropDataset, kept_crops, open_dataset
from radio_nas.distill.losses import (
    feature_fidelity,
    feature_loss,
    feature_smooth_l1,
    mse_loss,
    summary_fidelity,
    summary_loss,
)
from radio_nas.distill.pipeline import PipelineConfig, load_pipeline
from radio_nas.distill.targets import TERMS, TargetStats, TargetTransform, entry_stats
from radio_nas.distill.teachers import build_teachers
from radio_nas.study.record import CurvePoint

Report = Callable[[dict[str, Any]], None]
Pause = Callable[[], float]
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class TrialFailed(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message becomes the failure reason."""


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured. ``to_dict()`` gives the flat strict-JSON form (per-term ``scores``
    at the top level, curves as lists of numbers / ``{step, fidelity, seconds}`` objects)."""

    status: Literal["ok", "failed"]
    arch_id: str
    pipeline_id: str
    failure_reason: str | None = None
    fidelity: float | None = None
    """Mean over terms of the normalised score (cos - baseline) / (1 - baseline); 0 = the constant."""
    fidelity_cos: float | None = None
    """Mean over terms of the raw cosine similarity."""
    feature_smooth_l1: float | None = None
    """The feature loss's magnitude part on the eval crops, mean over teachers."""
    knn_accuracy: float | None = None
    scores: Mapping[str, float | None] = field(default_factory=dict)
    """Per term: ``fidelity/<teacher>/<term>`` (normalised), ``fidelity_cos/...``,
    ``fidelity_baseline/...`` (the constant predictor's cosine); per teacher
    ``feature_smooth_l1/<teacher>`` and ``feature_smooth_l1_baseline/<teacher>``."""
    fidelity_curve: tuple[CurvePoint, ...] = ()
    """Every ``eval.every`` step (first ``eval.size`` eval crops), then the final evaluation."""
    loss_curve: tuple[float, ...] = ()
    train_loss_final: float | None = None
    train_loss_mean: float | None = None
    steps: int = 0
    seconds: float = 0.0
    """Seconds on the trial's clock at the end (training + evaluations, as in the curve)."""
    steps_per_s: float | None = None
    images_per_s: float | None = None
    time_teacher_s: float = 0.0
    time_student_s: float = 0.0
    time_data_s: float = 0.0
    time_eval_s: float = 0.0
    wall_s: float = 0.0
    """Seconds run_trial took, less ``paused_s``."""
    paused_s: float = 0.0
    """Seconds paused while a sweep driver timed a latency (not on the trial's clock)."""
    cache_hit: bool | None = None
    weights_path: str | None = None
    data_skipped: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "scores":
                out.update({k: _finite(v) for k, v in value.items()})
            elif f.name == "fidelity_curve":
                out[f.name] = [p.to_dict() for p in value]
            elif f.name == "loss_curve":
                out[f.name] = [_finite(v) for v in value]
            else:
                out[f.name] = _finite(value) if isinstance(value, float) else value
        return out


def _finite(value: float | None) -> float | None:
    """Strict JSON: NaN / inf become None."""
    return value if value is None or math.isfinite(value) else None


@dataclass
class _Targets:
    train: dict[str, cache_mod.CacheEntry]
    eval: dict[str, cache_mod.CacheEntry]
    hit: bool
    seconds: float
    stats: dict[str, TargetStats]
    """Per teacher, the statistics of its training targets (see :mod:`radio_nas.distill.targets`)."""
    baseline: dict[str, np.ndarray] = field(default_factory=dict)
    """Per eval crop, the constant predictor's score: ``<teacher>/summary`` and ``<teacher>/features``
    cosine, ``<teacher>/smooth_l1`` feature SmoothL1 (see :func:`_constant_baseline`)."""


@dataclass
class _State:
    """What a trial accumulates while it runs; frozen into a TrialResult at the end."""

    clock0: float = 0.0
    steps: int = 0
    loss_curve: list[float] = field(default_factory=list)
    fidelity_curve: list[CurvePoint] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    """The latest evaluation (see _evaluate)."""
    time_student_s: float = 0.0
    time_data_s: float = 0.0
    time_eval_s: float = 0.0
    paused_s: float = 0.0
    pause_hook: Pause | None = None

    def seconds(self) -> float:
        return time.perf_counter() - self.clock0 if self.clock0 else 0.0

    def pause(self) -> None:
        """Wait at the sweep's gate if it is up; the wait moves the trial's clock forward."""
        if self.pause_hook is None:
            return
        waited = self.pause_hook()
        self.paused_s += waited
        if self.clock0:
            self.clock0 += waited

    def evaluated(self, step: int, metrics: dict[str, Any]) -> CurvePoint:
        self.metrics = metrics
        point = CurvePoint(step, metrics.get("fidelity"), self.seconds())
        self.fidelity_curve.append(point)
        return point


_SUMMARY_METRICS = ("fidelity", "fidelity_cos", "feature_smooth_l1", "knn_accuracy")


def run_trial(
    pipeline: PipelineConfig | str | Path | dict,
    arch: Any,
    *,
    report: Report | None = None,
    weights_path: str | Path | None = None,
    progress: bool = False,
    pause: Pause | None = None,
) -> TrialResult:
    """Train and evaluate one student (see module docstring)."""
    from radio_nas.models import build_model, resolve_config

    wall0 = time.perf_counter()
    if not isinstance(pipeline, PipelineConfig):
        pipeline = load_pipeline(pipeline)
    cfg = resolve_config(arch)
    cfg.check_input_size(*pipeline.size)  # type: ignore[attr-defined]
    dataset = open_dataset(pipeline.data)  # bad paths etc. raise ConfigError here
    threads = torch.get_num_threads()
    if pipeline.student.threads:
        torch.set_num_threads(pipeline.student.threads)
    state = _State(pause_hook=pause)
    status: Literal["ok", "failed"] = "ok"
    reason: str | None = None
    hit: bool | None = None
    teacher_s = 0.0
    saved: str | None = None
    init_state = _init_state(pipeline, cfg)  # before the teachers: a file that does not fit fails at once
    try:
        targets = _targets(pipeline, dataset, progress)
        hit, teacher_s = targets.hit, targets.seconds
        state.pause()
        torch.manual_seed(pipeline.seed)
        model = build_model(cfg)
        if init_state is not None:
            model.load_state_dict(init_state, strict=True)
            del init_state
        student = _Student(pipeline, model, targets)
        _train(pipeline, dataset, student, targets, state, report)
        state.pause()
        t0, p0 = time.perf_counter(), state.paused_s
        metrics = _evaluate(pipeline, dataset, student, targets, None, knn=pipeline.eval.knn, state=state)
        state.time_eval_s += time.perf_counter() - t0 - (state.paused_s - p0)
        point = state.evaluated(pipeline.steps, metrics)
        if not math.isfinite(metrics["fidelity"]):
            raise TrialFailed(f"non-finite fidelity {metrics['fidelity']} on the held-out crops")
        if report is not None and pipeline.eval.every and pipeline.steps and pipeline.steps % pipeline.eval.every == 0:
            report(_report_metrics(state, point))
        if weights_path is not None:
            state.pause()
            saved = _save(student, cfg, pipeline, Path(weights_path))
    except TrialFailed as exc:
        status, reason = "failed", str(exc)
    except ConfigError:
        raise  # a bad teacher entry (missing file, unknown output) is the user's to fix, not a trial result
    except Exception as exc:
        tail = traceback.format_exception(exc)[-2].strip().replace("\n", " ")
        status, reason = "failed", f"{type(exc).__name__}: {exc} ({tail})"
    finally:
        torch.set_num_threads(threads)
    busy = state.time_student_s
    curve = state.loss_curve
    m = state.metrics if status == "ok" else {}
    scores: dict[str, float | None] = {k: None for k in _score_keys(pipeline)}
    scores.update({k: v for k, v in m.items() if k in scores})
    return TrialResult(
        status=status,
        failure_reason=reason,
        arch_id=cfg.id,
        pipeline_id=pipeline.id,
        **{k: m.get(k) for k in _SUMMARY_METRICS},
        scores=scores,
        fidelity_curve=tuple(state.fidelity_curve),
        loss_curve=tuple(curve),
        train_loss_final=curve[-1] if curve else None,
        train_loss_mean=float(np.mean(curve)) if curve else None,
        steps=state.steps,
        seconds=state.seconds(),
        steps_per_s=state.steps / busy if busy > 0 else None,
        images_per_s=state.steps * pipeline.batch_size / busy if busy > 0 else None,
        time_teacher_s=teacher_s,
        time_student_s=state.time_student_s,
        time_data_s=state.time_data_s,
        time_eval_s=state.time_eval_s,
        wall_s=time.perf_counter() - wall0 - state.paused_s,
        paused_s=state.paused_s,
        cache_hit=hit,
        weights_path=saved,
        data_skipped=len(dataset.skipped),
    )


def _init_state(pipeline: PipelineConfig, cfg: Any) -> dict[str, torch.Tensor] | None:
    """``student.init_weights`` read weights-only and checked against `cfg` (ConfigError if it does not fit)."""
    if pipeline.student.init_weights is None:
        return None
    from radio_nas.models.published import student_state_dict

    return student_state_dict(pipeline.student.init_weights, cfg, key="student.init_weights")


def _score_keys(pipeline: PipelineConfig) -> list[str]:
    keys = []
    for t in pipeline.teachers:
        keys += [
            f"{p}/{t.name}/{m}"
            for p in ("fidelity", "fidelity_cos", "fidelity_baseline")
            for m in ("summary", "features")
        ]
        keys += [f"feature_smooth_l1/{t.name}", f"feature_smooth_l1_baseline/{t.name}"]
    return keys


# ---------------------------------------------------------------------------------------------


def _targets(pipeline: PipelineConfig, dataset: CropDataset, progress: bool) -> _Targets:
    """Teacher outputs for the train and eval crops, from the cache (built on first use)."""
    t0 = time.perf_counter()
    teachers: dict[str, Any] = {}

    def get_teachers() -> dict[str, Any]:
        if not teachers:
            teachers.update({t.name: t for t in build_teachers(pipeline)})
        return teachers

    def outputs(split: str) -> tuple[dict[str, cache_mod.CacheEntry], bool]:
        return cache_mod.teacher_outputs(
            pipeline.teachers,
            dataset,
            split,
            root=pipeline.cache_dir(),
            get_teachers=get_teachers,
            enabled=pipeline.cache.enabled,
            progress=progress,
        )

    train, built_train = outputs("train")
    evals, built_eval = outputs("eval")
    stats = {name: entry_stats(entry) for name, entry in train.items()}
    baseline = _constant_baseline(stats, evals, pipeline.loss.smooth_l1_beta)
    return _Targets(train, evals, not (built_train or built_eval), time.perf_counter() - t0, stats, baseline)


class _Student(nn.Module):
    """Student backbone + per-teacher adaptors + balancer (everything that trains)."""

    def __init__(self, pipeline: PipelineConfig, model: nn.Module, targets: _Targets):
        super().__init__()
        self.model = model
        summary_dim, feature_dim = cast(int, model.summary_dim), cast(int, model.feature_dim)
        self.adaptors = nn.ModuleDict()
        # Per teacher, the map from teacher space to the space the adaptors predict and the loss
        # compares in (the identity for ``targets.standardize: none``).
        self.standardize = nn.ModuleDict()
        weights: dict[str, float] = {}
        for t in pipeline.teachers:
            entry, stats = targets.train[t.name], targets.stats[t.name]
            tfs = {term: TargetTransform(getattr(stats, term), pipeline.targets.standardize) for term in TERMS}
            self.standardize[t.name] = nn.ModuleDict(tfs)
            self.adaptors[t.name] = TeacherAdaptor(
                summary_dim,
                feature_dim,
                entry.summary.shape[1],
                entry.features.shape[1],
                tuple(entry.features.shape[2:]),
                pipeline.adaptor.hidden,
                start=_starts(tfs, stats) if pipeline.adaptor.init == "constant" else None,
            )
            weights[f"{t.name}/summary"], weights[f"{t.name}/features"] = t.weight_summary, t.weight_features
        self.terms = list(weights)
        self.balancer = make_balancer(pipeline.balancing, self.terms, summary_dim, weights)
        self.loss_cfg = pipeline.loss
        self.amp = pipeline.student.amp

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """The student summary and, per teacher, the adaptors' (summary, features) in loss space."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            summary, features = self.model(x)
            outputs = {name: ad(summary, features) for name, ad in self.adaptors.items()}
        return summary.float(), {name: (s.float(), f.float()) for name, (s, f) in outputs.items()}

    def _tf(self, teacher: str, term: str) -> TargetTransform:
        return cast(TargetTransform, cast(nn.ModuleDict, self.standardize[teacher])[term])

    def to_loss_space(
        self, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Teacher outputs mapped as the adaptors predict them."""
        return {n: (self._tf(n, "summary")(s), self._tf(n, "features")(f)) for n, (s, f) in pairs.items()}

    def to_teacher_space(
        self, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Adaptor outputs mapped back to the teacher's space (evaluation)."""
        return {
            n: (self._tf(n, "summary").inverse(s), self._tf(n, "features").inverse(f)) for n, (s, f) in pairs.items()
        }


def _starts(tfs: dict[str, TargetTransform], stats: TargetStats) -> tuple[TermStart, TermStart]:
    """Each head's constant output (the mean target, mapped to loss space: 0 when standardised) and
    its scale (the channel std where the loss space is raw teacher space, else 1)."""
    out = []
    for term in TERMS:
        tf, st = tfs[term], getattr(stats, term)
        mean = torch.as_tensor(st.mean)
        with torch.no_grad():
            offset = tf(mean[None])[0]
        scale = torch.as_tensor(st.std) if tf.mode == "none" else torch.ones(st.std.shape)
        out.append(TermStart(offset, scale))
    return out[0], out[1]


def _images(dataset: CropDataset, split: str, idx: np.ndarray, pipeline: PipelineConfig) -> torch.Tensor:
    x = torch.from_numpy(kept_crops(dataset, split, idx, pipeline.size)).float().div_(255)
    x = (x - _MEAN) / _STD
    x = x.to(pipeline.student.device)
    return x.contiguous(memory_format=torch.channels_last) if pipeline.student.channels_last else x


def _teacher_batch(
    entries: dict[str, cache_mod.CacheEntry], idx: np.ndarray, device: str
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    order = np.sort(idx)  # memmap reads in file order
    inverse = np.argsort(np.argsort(idx))
    out = {}
    for name, e in entries.items():
        s = torch.from_numpy(np.asarray(e.summary[order], dtype=np.float32)[inverse])
        f = torch.from_numpy(np.asarray(e.features[order], dtype=np.float32)[inverse])
        out[name] = (s.to(device), f.to(device))
    return out


def _losses(
    student: _Student,
    outputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    lc = student.loss_cfg
    losses = {}
    for name, (ps, pf) in outputs.items():
        ts, tf = targets[name]
        if lc.kind == "mse":
            losses[f"{name}/summary"], losses[f"{name}/features"] = mse_loss(ps, ts), mse_loss(pf, tf)
            continue
        losses[f"{name}/summary"] = summary_loss(ps, ts)
        losses[f"{name}/features"] = feature_loss(pf, tf, lc.cos_weight, lc.smooth_l1_weight, lc.smooth_l1_beta)
    return losses


def _optimizer(pipeline: PipelineConfig, student: _Student) -> tuple[torch.optim.Optimizer, Any]:
    o = pipeline.optim
    decay = [p for p in student.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in student.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o.lr,
        betas=o.betas,
    )
    total = max(pipeline.steps, 1)

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / (o.warmup_steps + 1)
        if o.schedule == "constant":
            return 1.0
        progress = (step - o.warmup_steps) / max(total - o.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _train(
    pipeline: PipelineConfig,
    dataset: CropDataset,
    student: _Student,
    targets: _Targets,
    state: _State,
    report: Report | None,
) -> None:
    device = pipeline.student.device
    student.to(device)
    if pipeline.student.channels_last:
        student.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt, sched = _optimizer(pipeline, student)
    rng = np.random.default_rng(pipeline.seed)
    stream = np.zeros(0, dtype=np.int64)
    state.clock0 = time.perf_counter()
    for step in range(1, pipeline.steps + 1):
        state.pause()
        t0 = time.perf_counter()
        while len(stream) < pipeline.batch_size:  # epochs over the crop pool, reshuffled each time
            stream = np.concatenate([stream, rng.permutation(pipeline.data.train_size)])
        idx, stream = stream[: pipeline.batch_size], stream[pipeline.batch_size :]
        x = _images(dataset, "train", idx, pipeline)
        y = student.to_loss_space(_teacher_batch(targets.train, idx, device))
        t1 = time.perf_counter()
        student.train()
        summary, outputs = student(x)
        losses = _losses(student, outputs, y)
        total, weights = student.balancer(losses, context=summary)
        if not torch.isfinite(total):
            terms = ", ".join(f"{k}={float(v.detach().mean()):.4g}" for k, v in losses.items())
            raise TrialFailed(f"non-finite loss {float(total.detach())} at step {step} ({terms})")
        opt.zero_grad(set_to_none=True)
        total.backward()
        if pipeline.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(student.parameters(), pipeline.optim.grad_clip)
        opt.step()
        sched.step()
        state.loss_curve.append(float(total.detach()))
        t2 = time.perf_counter()
        state.steps = step
        state.time_data_s += t1 - t0
        state.time_student_s += t2 - t0
        every = pipeline.eval.every
        if every and step % every == 0 and step < pipeline.steps:
            t3, p3 = time.perf_counter(), state.paused_s
            metrics = _evaluate(pipeline, dataset, student, targets, pipeline.eval.size, knn=False, state=state)
            state.time_eval_s += time.perf_counter() - t3 - (state.paused_s - p3)
            point = state.evaluated(step, metrics)
            if report is not None:
                report(_report_metrics(state, point, weights))


def _report_metrics(state: _State, point: CurvePoint, weights: dict[str, float] | None = None) -> dict[str, Any]:
    """What ``report`` gets at an evaluation: step, seconds, train_loss, fidelity, fidelity_cos,
    the per-term ``fidelity/...`` scores and the balancing weights ``lambda/...``."""
    m = state.metrics
    out = {
        "step": point.step,
        "seconds": point.seconds,
        "train_loss": state.loss_curve[-1] if state.loss_curve else None,
        "fidelity": point.fidelity,
        "fidelity_cos": m.get("fidelity_cos"),
    }
    out.update({k: v for k, v in m.items() if k.startswith("fidelity/")})
    out.update({f"lambda/{k}": v for k, v in (weights or {}).items()})
    return out


@torch.no_grad()
def _embed(
    pipeline: PipelineConfig,
    dataset: CropDataset,
    student: _Student,
    split: str,
    n: int,
    entries: dict[str, cache_mod.CacheEntry] | None,
    state: _State | None = None,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Student summaries of the first `n` crops of `split` and (given entries) per-crop scores:
    ``<teacher>/summary`` and ``<teacher>/features`` cosine, ``<teacher>/smooth_l1``."""
    scores: dict[str, list[float]] = {}
    summaries = []
    bs = pipeline.eval.batch_size
    beta = pipeline.loss.smooth_l1_beta
    for start in range(0, n, bs):
        if state is not None:
            state.pause()
        idx = np.arange(start, min(start + bs, n))
        summary, outputs = student(_images(dataset, split, idx, pipeline))
        summaries.append(summary.float().cpu())
        if entries is None:
            continue
        y = _teacher_batch(entries, idx, pipeline.student.device)
        for name, (ps, pf) in student.to_teacher_space(outputs).items():
            ts, tf = y[name]
            scores.setdefault(f"{name}/summary", []).extend(summary_fidelity(ps, ts).tolist())
            scores.setdefault(f"{name}/features", []).extend(feature_fidelity(pf, tf).tolist())
            scores.setdefault(f"{name}/smooth_l1", []).extend(feature_smooth_l1(pf, tf, beta).tolist())
    return torch.cat(summaries), scores


def _constant_baseline(
    stats: dict[str, TargetStats], evals: dict[str, cache_mod.CacheEntry], beta: float, chunk: int = 64
) -> dict[str, np.ndarray]:
    """Per eval crop, the scores of the constant predictor: the mean teacher output over the cached
    training targets (summary vector, feature map per position), so no teacher runs. It is the
    floor a student must beat; the primary fidelity is normalised against it."""
    out: dict[str, np.ndarray] = {}
    for name, st in stats.items():
        ms, mf = torch.from_numpy(st.summary.mean), torch.from_numpy(st.features.mean)
        ev = evals[name]
        cols: dict[str, list[float]] = {"summary": [], "features": [], "smooth_l1": []}
        for i in range(0, ev.summary.shape[0], chunk):
            ts = torch.from_numpy(np.asarray(ev.summary[i : i + chunk], dtype=np.float32))
            tf = torch.from_numpy(np.asarray(ev.features[i : i + chunk], dtype=np.float32))
            cols["summary"] += summary_fidelity(ms.expand_as(ts), ts).tolist()
            cols["features"] += feature_fidelity(mf.expand_as(tf), tf).tolist()
            cols["smooth_l1"] += feature_smooth_l1(mf.expand_as(tf), tf, beta).tolist()
        out.update({f"{name}/{k}": np.array(v, dtype=np.float64) for k, v in cols.items()})
    return out


def normalised_fidelity(cos: float, baseline: float) -> float:
    """(cos - baseline) / (1 - baseline): 0 = no better than the constant predictor, 1 = perfect."""
    return (cos - baseline) / max(1.0 - baseline, 1e-6)


def _evaluate(
    pipeline: PipelineConfig,
    dataset: CropDataset,
    student: _Student,
    targets: _Targets,
    size: int | None,
    knn: bool,
    state: _State | None = None,
) -> dict[str, Any]:
    student.eval()
    n = min(size or dataset.size("eval"), dataset.size("eval"))
    queries, scores = _embed(pipeline, dataset, student, "eval", n, targets.eval, state)
    out: dict[str, Any] = {}
    for k in student.terms:  # the baseline is averaged over the same crops as the student
        cos, base = float(np.mean(scores[k])), float(np.mean(targets.baseline[k][:n]))
        out[f"fidelity/{k}"] = normalised_fidelity(cos, base)
        out[f"fidelity_cos/{k}"] = cos
        out[f"fidelity_baseline/{k}"] = base
    out["fidelity"] = float(np.mean([out[f"fidelity/{k}"] for k in student.terms]))
    out["fidelity_cos"] = float(np.mean([out[f"fidelity_cos/{k}"] for k in student.terms]))
    teachers = [t.name for t in pipeline.teachers]
    for t in teachers:
        out[f"feature_smooth_l1/{t}"] = float(np.mean(scores[f"{t}/smooth_l1"]))
        out[f"feature_smooth_l1_baseline/{t}"] = float(np.mean(targets.baseline[f"{t}/smooth_l1"][:n]))
    out["feature_smooth_l1"] = float(np.mean([out[f"feature_smooth_l1/{t}"] for t in teachers]))
    m = min(pipeline.eval.knn_train_size, dataset.size("train"))
    key_labels, query_labels = dataset.labels("train", range(m)), dataset.labels("eval", range(n))
    if knn and key_labels is not None and query_labels is not None:
        keys, _ = _embed(pipeline, dataset, student, "train", m, None, state)
        out["knn_accuracy"] = knn_accuracy(keys, key_labels, queries, query_labels, pipeline.eval.knn_k)
    student.train()
    return out


def knn_accuracy(
    keys: torch.Tensor, key_labels: np.ndarray, queries: torch.Tensor, query_labels: np.ndarray, k: int = 1
) -> float:
    """Cosine k-NN classification accuracy (majority vote, ties to the nearest)."""
    sim = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(keys, dim=1).T
    k = min(k, keys.shape[0])
    nearest = sim.topk(k, dim=1).indices.numpy()
    correct = 0
    for row, truth in zip(nearest, query_labels):
        votes = key_labels[row]
        values, counts = np.unique(votes, return_counts=True)
        best = values[counts == counts.max()]
        pred = next(v for v in votes if v in best)  # tie: the nearest of the tied classes
        correct += int(pred == truth)
    return correct / max(len(query_labels), 1)


def _save(student: _Student, cfg: Any, pipeline: PipelineConfig, path: Path) -> str:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in student.state_dict().items()}
    meta = {
        "arch": json.dumps(cfg.to_dict()),
        "pipeline_id": pipeline.id,
        "teachers": json.dumps([t.name for t in pipeline.teachers]),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return str(path)
