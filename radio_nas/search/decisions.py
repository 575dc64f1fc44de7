"""What a sweep decides about each proposal, given what became of it: one set of rules, read by the
sweep's searcher (:mod:`radio_nas.search.searcher`) and by the simulator that replays sweeps against
an exhaustive table (:mod:`radio_nas.simulate`), so a replay follows the sweep's rules by construction.

A proposal ends as one :class:`Event`; :func:`decide` says how it is told to Optuna (state), what
radio-nas records (status), which counter it adds to, whether it lengthens the run of untrainable
proposals (``budget.max_infeasible`` of them in a row end the sweep), whether the budget counts it,
and whether a random untried point is queued after it (:func:`queue_untried`).

    decide(Event.COPY).state, decide(Event.COPY).status, decide(Event.COPY).streak
    # ('COMPLETE', <Status.OK: 'ok'>, 'add')
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from radio_nas.study.record import Status, read_trials

if TYPE_CHECKING:
    from optuna.study import Study

    from radio_nas.search.space import Space


class Event(enum.Enum):
    """What became of one proposal."""

    REJECTED = "rejected"
    """The model refuses the variant (never measured)."""
    UNMEASURABLE = "unmeasurable"
    """Measuring its costs raised (an absurd width): failed at once, never queued again."""
    INFEASIBLE = "infeasible"
    """Measured, and a constraint broke: told COMPLETE with stand-in values (NSGA-II and GP only
    learn from COMPLETE trials; its violated constraint keeps it off every front)."""
    COPY = "copy"
    """Identical to a variant trained already: its values, not trained again."""
    WAITS = "waits"
    """Identical to a variant still training: told when that one ends (a copy, or failed with it)."""
    STARTED = "started"
    """Feasible: it trains."""
    TRAINED = "trained"
    """Trained, and every objective is finite."""
    FAILED = "failed"
    """Trained (or tried to) and failed, or an objective is missing or not finite."""
    STOPPED = "stopped"
    """Stopped by the scheduler after an intermediate result."""


@dataclasses.dataclass(frozen=True)
class Decision:
    state: Literal["COMPLETE", "PRUNED", "FAIL"] | None
    """Optuna's state it is told with; None: not told now."""
    status: Status | None
    """The status radio-nas records with it."""
    count: Literal["ok", "failed", "pruned", "infeasible", "copies"] | None
    """The outcome counter it adds to."""
    streak: Literal["add", "reset", "keep"]
    """The run of untrainable or already-trained proposals: one longer, back to 0, or unchanged."""
    trained: bool
    """Whether the budget (trained trials) counts it."""
    queue_untried: bool
    """Whether a random point not tried yet is queued after it (see :func:`queue_untried`)."""


_RULES = {
    Event.REJECTED: Decision("PRUNED", Status.INFEASIBLE, "infeasible", "add", False, False),
    Event.UNMEASURABLE: Decision("FAIL", Status.FAILED, "failed", "add", False, False),
    Event.INFEASIBLE: Decision("COMPLETE", Status.INFEASIBLE, "infeasible", "add", False, False),
    # a sampler that only proposes known points has nothing left to try: a copy lengthens the streak
    Event.COPY: Decision("COMPLETE", Status.OK, "copies", "add", False, True),
    Event.WAITS: Decision(None, None, None, "add", False, True),
    Event.STARTED: Decision(None, Status.RUNNING, None, "reset", False, False),
    Event.TRAINED: Decision("COMPLETE", Status.OK, "ok", "keep", True, False),
    Event.FAILED: Decision("FAIL", Status.FAILED, "failed", "keep", True, False),
    Event.STOPPED: Decision("PRUNED", Status.PRUNED, "pruned", "keep", True, False),
}


def decide(event: Event) -> Decision:
    return _RULES[event]


def next_streak(streak: int, decision: Decision) -> int:
    return {"add": streak + 1, "reset": 0, "keep": streak}[decision.streak]


def streak_stop(streak: int, max_infeasible: int) -> str | None:
    """Why the sweep stops after `streak` untrainable or already-trained proposals in a row, or None."""
    if streak < max_infeasible:
        return None
    return (
        f"{streak} infeasible, unmeasurable or already-trained variants in a row "
        "(budget.max_infeasible); loosen the constraints or widen the space"
    )


def trained_outcome(
    status: str, objective_names: Sequence[str], value_of: Callable[[str], Any]
) -> tuple[Event, list[float] | None, str | None]:
    """A trained trial's event, objective values and failure reason: ok only if every objective is
    finite (`value_of(name)`), else failed naming the first objective that is not."""
    if status != "ok":
        return Event.FAILED, None, None
    values = []
    for name in objective_names:
        value = value_of(name)
        if value is None or not math.isfinite(float(value)):
            return Event.FAILED, None, f"objective {name} is missing or not finite"
        values.append(float(value))
    return Event.TRAINED, values, None


def optuna_state(decision: Decision) -> Any:
    """The Optuna TrialState of a decision that tells (its state is not None)."""
    import optuna

    assert decision.state is not None
    return optuna.trial.TrialState[decision.state]


def queues_untried(space: Space) -> bool:
    """Whether a copy queues an untried point in this space: finite, unconditional search spaces
    sampled by a model (a conditional space's grid holds points it never proposes; an ablation runs
    only its queued points; the grid sampler proposes every point once, and a queued point would take
    a grid slot, so a point would be missed)."""
    return (
        space.grid() is not None
        and not any(p.when for p in space.sampled)
        and space.config.mode != "ablation"
        and space.config.sampler.name != "grid"
    )


def queue_untried(study: Study, space: Space, salt: int) -> dict[str, Any] | None:
    """After a copy, queue a random variant not tried yet (see :func:`queues_untried`): a model-based
    sampler that keeps proposing its favourite would otherwise spend the sweep re-proposing it. The
    choice is seeded by the sampler's seed and `salt` (the copy's trial number). Returns what it queued."""
    import optuna

    grid = space.grid()
    if not grid or not queues_untried(space):
        return None
    trials = study.get_trials(deepcopy=False)
    if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
        return None
    tried = {tuple(sorted(t.params.items())) for t in trials if t.params}
    rng = random.Random(f"{space.config.sampler.seed}-{salt}")
    for _ in range(200):
        candidate = {name: rng.choice(values) for name, values in grid.items()}
        if tuple(sorted(candidate.items())) not in tried:
            study.enqueue_trial(candidate)
            return candidate
    return None


def exhausted(study: Study, space: Space) -> bool:
    """Whether nothing is left to propose: an ablation runs only its queued points; a grid has a
    fixed number of points (set-aside trials of an edited space hold none: Optuna's GridSampler
    skips them too)."""
    import optuna

    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if space.config.mode == "ablation":
        return not waiting
    if space.config.sampler.name == "grid":
        size = space.grid_size() or 0
        asked = [
            r
            for r in read_trials(study)
            if r.state != "WAITING" and not r.orphaned and r.status is not Status.SET_ASIDE
        ]
        return len(asked) >= size and not waiting
    return False
