"""When a sweep may time a latency, and the pause gate around the timed runs (the searcher's latency
state: :mod:`radio_nas.search.searcher` describes the rules, :mod:`radio_nas.search.gate` the gate).

Latency is only timed on an otherwise idle machine. With a pause gate (a local sweep) the running
trials stop at a step boundary for the timed runs only; nothing is timed while a trial is still
starting. A try that fails (a trial does not stop within ``_GATE_TRY_S``) lets the trials train that
long before the next; after ``_GATE_GIVE_UP_S`` of trying, a latency is timed anyway (recorded
``latency_quiet: false``). A latency that only an objective reads is timed while its variant trains
(:attr:`LatencyTiming.later`): the trial holds at its first step boundary until timed.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from radio_nas.search.costs import constraint_limits, latency_is_cached, time_latency
from radio_nas.search.gate import PauseGate
from radio_nas.study.record import write_trial

if TYPE_CHECKING:
    from optuna.trial import Trial

    from radio_nas.distill.pipeline import PipelineConfig
    from radio_nas.models import ArchConfig
    from radio_nas.search.space import Space

_GATE_TRY_S = 5.0
"""How long one attempt waits for the running trials to stop before the variant waits instead."""
_GATE_GIVE_UP_S = 300.0
"""After this long waiting, a latency is timed anyway (recorded as not quiet, not cached)."""

Variant = tuple["Trial", "ArchConfig", "PipelineConfig"]


class NotYet(Exception):
    """The running trials did not stop in time: try the held variant again at the next suggest."""


class LatencyTiming:
    """A sweep's latency state: whether it needs latencies, its pause gate, the trials started
    before theirs was timed, and the gate's bookkeeping (see the module docstring).

    `running` gives the numbers of the trials running now; `line` prints a progress event."""

    def __init__(
        self,
        space: Space,
        pause_gate: str | Path | None,
        running: Callable[[], list[int]],
        line: Callable[[str], None],
    ):
        limits = constraint_limits(space.config.constraints)
        self.settings = space.config.latency
        self.needed = "latency_ms" in space.objective_names or limits["latency_ms"] is not None
        self.gate = PauseGate(pause_gate) if pause_gate is not None and self.needed else None
        # the latency only ranks trained variants: time it while the variant trains
        self.later = self.gate is not None and limits["latency_ms"] is None and space.config.scheduler.name != "moasha"
        self.untimed: dict[str, Variant] = {}  # tune trial id -> started before its latency was timed
        self.pauses, self.seconds = 0, 0.0  # latencies timed with the gate up; seconds it was up
        self._running, self._line = running, line
        self._waiting_since: float | None = None  # the held variant's first try at the gate
        self._retry_at = 0.0  # after a try that failed, let the paused trials train this long

    @property
    def folder(self) -> str | None:
        """The gate's folder, for the trials (None: no gate)."""
        return str(self.gate.folder) if self.gate is not None else None

    def is_later(self, arch_cfg: ArchConfig, pipeline: PipelineConfig) -> bool:
        """Whether this variant starts before its latency is timed (none cached)."""
        return self.later and not latency_is_cached(arch_cfg, self.settings, pipeline.size)

    def must_wait(self, arch_cfg: ArchConfig, pipeline: PipelineConfig) -> bool:
        """Whether a variant whose latency is to be timed now waits instead: trials run and there is
        no gate (a cluster), or the gate cannot be tried yet (a trial is starting, a try just failed)."""
        if not self.needed or not self._running():
            return False
        if self.later or latency_is_cached(arch_cfg, self.settings, pipeline.size):
            return False
        return self.gate is None or not self.gate_open()

    def failed_try(self) -> None:
        self._retry_at = time.monotonic() + _GATE_TRY_S

    def timed(self) -> None:
        """The held variant was measured: the next one waits afresh."""
        self._waiting_since = None

    def gate_open(self) -> bool:
        """Whether to try the gate now: every running trial past its start and no failed try
        moments ago, or waited so long that a latency is timed anyway."""
        if self.gate is None:
            return True
        since = self._waiting_since = self._waiting_since or time.monotonic()
        if time.monotonic() - since >= _GATE_GIVE_UP_S:
            return True
        return time.monotonic() >= self._retry_at and self.gate.ready(self._running())

    def time_started(self) -> None:
        """Time the latencies of running trials that started untimed, when the gate allows; while
        it does not (another trial is starting), one holding for it trains on, timed at a later pause."""
        for trial_id, variant in list(self.untimed.items()):
            if not self.gate_open():
                assert self.gate is not None  # (only a gated sweep defers a latency)
                for trial, _, _ in self.untimed.values():
                    if self.gate.ready([trial.number]):  # at its first boundary: let it go
                        self.gate.release(trial.number)
                return
            try:
                self.time_latency(*variant)
            except NotYet:
                self.failed_try()
                return
            del self.untimed[trial_id]

    def time_latency(
        self, trial: Trial, arch_cfg: ArchConfig, pipeline: PipelineConfig, last_try: bool = False
    ) -> None:
        """Time a started trial's latency behind the gate and record it (`last_try`: at once, as
        not quiet if the trials do not stop)."""
        try:
            timed = time_latency(
                arch_cfg, self.settings, pipeline.size, quiet=functools.partial(self.quiet, last_try=last_try)
            )
        except (MemoryError, RuntimeError, ValueError, OverflowError) as exc:
            # no latency: the trial is told FAIL when it ends (an objective is missing)
            self._waiting_since = None
            self._line(f"#{trial.number}: timing its latency raised {type(exc).__name__}: {str(exc)[:200]}")
            return
        finally:
            assert self.gate is not None  # (only a gated sweep defers a latency)
            self.gate.release(trial.number)  # also after a failed try: it trains, timed at a later pause
        self._waiting_since = None
        write_trial(trial, latency_ms=timed.median_ms, latency_device=timed.device_name, latency_quiet=timed.quiet)
        if timed.quiet is False:
            self._line(f"#{trial.number}: latency timed while trials ran (they did not pause); not cached")

    @contextlib.contextmanager
    def quiet(self, last_try: bool = False) -> Iterator[bool]:
        """Around the timed runs of a latency: the running trials paused (see the module docstring)."""
        numbers = self._running()
        if self.gate is None or not numbers:
            yield True  # nothing of this sweep runs (or a cluster: the searcher waited for idle)
            return
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        give_up = last_try or now - self._waiting_since >= _GATE_GIVE_UP_S
        # a last try does not wait for trials still starting: they reach no step boundary soon
        wait_s = 0.0 if last_try and not self.gate.ready(numbers) else _GATE_TRY_S
        t0 = time.monotonic()
        try:
            with self.gate.pause(numbers, wait_s) as paused:
                if not paused and not give_up:
                    raise NotYet
                self.pauses += 1
                yield paused
        finally:
            self.seconds += time.monotonic() - t0

    def lower(self) -> None:
        if self.gate is not None:
            self.gate.lower()
