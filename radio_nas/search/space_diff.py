"""What changed between the space a results folder was made with and the one resuming it.

    from radio_nas.search.space_diff import space_changes, check_carryable
    check_carryable(old_record, old_config, space)     # ConfigError naming the key, or None
    for line in space_changes(old_config, old_params, space): print(line)

A resume may change what is searched (parameters added or removed, ranges widened or narrowed,
choices added or removed, fixed values, the base, constraints, the sampler): the finished trials
that are points of the new space are carried over (:mod:`radio_nas.search.carry`). Changes that
make every old result meaningless are refused: another pipeline (what "trained" means), other
objectives (what the values are), another mode, and other latency settings when latency is an
objective or a constraint (the old timings would be compared with new ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from radio_nas._config import ConfigError
from radio_nas.search.grammar import Choice, Fixed, FloatRange, IntRange
from radio_nas.search.space import LatencySettings, Param, Space, SpaceConfig
from radio_nas.study.record import StudyRecord

__all__ = ["check_carryable", "first_difference", "latency_matters", "space_changes"]

_FRESH_HINT = "old results cannot be compared with new ones; resume with the original space, or use --fresh"


def latency_matters(cfg: SpaceConfig) -> bool:
    """Latency is an objective or a constraint (then its settings are part of what a result means)."""
    return any(o.metric == "latency_ms" for o in cfg.objectives) or cfg.constraints.max_latency_ms is not None


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key at which two plain-data trees differ, with both values; None if equal."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in sorted(set(old) | set(new), key=str):
            found = first_difference(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{prefix}.{k}" if prefix else str(k))
            if found is not None:
                return found
        return None
    if _plain(old) != _plain(new):
        return prefix, old, new
    return None


def check_carryable(old: StudyRecord, old_cfg: SpaceConfig | None, space: Space) -> None:
    """Refuse (ConfigError naming the key) a resume whose changes make the folder's results
    meaningless: another pipeline, other objectives, another mode, other latency settings when
    latency counts."""
    new_cfg = space.config
    if old.mode != new_cfg.mode:
        raise ConfigError(f"the mode changed ({old.mode} -> {new_cfg.mode}); {_FRESH_HINT}", key="mode")
    if old.mode == "ablation":
        raise ConfigError(
            "an ablation's design cannot be edited in place (its points are queued when it starts); "
            "resume with the original space, or use --fresh",
            key="parameters",
        )
    before = [(o.metric, o.direction) for o in old.objectives]
    after = [(o.metric, o.direction) for o in new_cfg.objectives]
    if before != after:
        show = lambda objs: ", ".join(f"{m} {d[:3]}" for m, d in objs)
        raise ConfigError(f"the objectives changed ({show(before)} -> {show(after)}); {_FRESH_HINT}", key="objectives")
    if old.pipeline is not None:
        diff = first_difference(dict(old.pipeline), space.pipeline.to_dict())
        if diff is not None:
            key, a, b = diff
            raise ConfigError(
                f"the pipeline changed ({key}: {_show(a)} -> {_show(b)}): old trials were trained another way; "
                f"{_FRESH_HINT}",
                key=f"pipeline.{key}",
            )
    if latency_matters(new_cfg) or (old_cfg is not None and latency_matters(old_cfg)):
        recorded = old.latency if old.latency is not None else (old_cfg.latency.to_dict() if old_cfg else None)
        if recorded is None:
            raise ConfigError(
                "latency counts in this space but the folder's study does not say how it was timed; use --fresh",
                key="latency",
            )
        diff = first_difference(LatencySettings.from_dict(dict(recorded)).to_dict(), new_cfg.latency.to_dict())
        if diff is not None:
            key, a, b = diff
            raise ConfigError(
                f"the latency settings changed ({key}: {_show(a)} -> {_show(b)}) and latency is an objective or a "
                f"constraint; {_FRESH_HINT}",
                key=f"latency.{key}",
            )


def space_changes(old_cfg: SpaceConfig, old_params: Sequence[Param], space: Space) -> list[str]:
    """One line per change, in the order: parameters, base, constraints, latency, sampler, others."""
    new_cfg = space.config
    lines: list[str] = []
    before = {p.name: p for p in old_params}
    after = {p.name: p for p in space.params if not (new_cfg.mode == "ablation" and p.name == "pipeline.seed")}
    for name in after:
        if name not in before:
            lines.append(f"parameter added: {name} {_describe(after[name].dist)}")
    for name in before:
        if name not in after:
            lines.append(f"parameter removed: {name} (was {_describe(before[name].dist)})")
    for name in after:
        if name in before:
            lines += [f"{name}: {c}" for c in _param_changes(before[name], after[name])]
    for key in sorted(set(old_cfg.base) | set(new_cfg.base)):
        a, b = old_cfg.base.get(key, _ABSENT), new_cfg.base.get(key, _ABSENT)
        if _plain(a) != _plain(b):
            lines.append(f"base.{key}: {_show(a)} -> {_show(b)}")
    for field in ("max_params", "max_gmacs", "max_latency_ms"):
        a, b = getattr(old_cfg.constraints, field), getattr(new_cfg.constraints, field)
        if a != b:
            how = "added" if a is None else "removed" if b is None else "tightened" if b < a else "loosened"
            lines.append(f"constraints.{field} {how}: {_show(a)} -> {_show(b)}")
    for section in ("latency", "sampler", "scheduler"):
        diff = first_difference(getattr(old_cfg, section).to_dict(), getattr(new_cfg, section).to_dict())
        if diff is not None:
            key, a, b = diff
            lines.append(f"{section}.{key}: {_show(a)} -> {_show(b)}")
    if old_cfg.name != new_cfg.name:
        lines.append(f"name: {old_cfg.name} -> {new_cfg.name}")
    return lines


def _param_changes(old: Param, new: Param) -> list[str]:
    a, b = old.dist, new.dist
    out: list[str] = []
    if a == b:
        pass
    elif isinstance(a, Choice) and isinstance(b, Choice):
        added = [v for v in b.values if v not in a.values]
        removed = [v for v in a.values if v not in b.values]
        if added:
            out.append("choices added " + ", ".join(map(_show, added)))
        if removed:
            out.append("choices removed " + ", ".join(map(_show, removed)))
        if not added and not removed:
            out.append("choices reordered")
    elif isinstance(a, (IntRange, FloatRange)) and type(a) is type(b):
        assert isinstance(b, (IntRange, FloatRange))
        if (a.low, a.high) != (b.low, b.high):
            wider, narrower = b.low <= a.low and b.high >= a.high, b.low >= a.low and b.high <= a.high
            how = "widened" if wider else "narrowed" if narrower else "moved"
            out.append(f"range {how}: [{_show(a.low)}, {_show(a.high)}] -> [{_show(b.low)}, {_show(b.high)}]")
        if a.step != b.step:
            out.append(f"step {_show(a.step)} -> {_show(b.step)}")
        if a.log != b.log:
            out.append(f"log {a.log} -> {b.log}")
    elif isinstance(a, Fixed) and isinstance(b, Fixed):
        out.append(f"fixed value {_show(a.value)} -> {_show(b.value)}")
    else:
        out.append(f"{_describe(a)} -> {_describe(b)}")
    if old.when != new.when:
        out.append(f"condition {_show(old.when) if old.when else 'none'} -> {_show(new.when) if new.when else 'none'}")
    return out


def _describe(d: Any) -> str:
    if isinstance(d, Fixed):
        return f"fixed {_show(d.value)}"
    if isinstance(d, Choice):
        return "choice(" + ", ".join(map(_show, d.values)) + ")"
    if isinstance(d, IntRange):
        return (
            f"range({d.low}, {d.high}" + (f", step {d.step}" if d.step != 1 else "") + (", log" if d.log else "") + ")"
        )
    return (
        f"interval({d.low:g}, {d.high:g}" + (f", step {d.step:g}" if d.step else "") + (", log" if d.log else "") + ")"
    )


class _Absent:
    def __repr__(self) -> str:
        return "(unset)"


_ABSENT = _Absent()


def _plain(v: Any) -> Any:
    """Lists and tuples compare equal (YAML gives lists, configs tuples)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _show(v: Any) -> str:
    if isinstance(v, _Absent):
        return "(unset)"
    if isinstance(v, tuple):
        v = _plain(v)
    return str(v) if not isinstance(v, str) else v
