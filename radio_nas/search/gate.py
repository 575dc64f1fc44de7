"""The pause gate: trials running side by side stop at a step boundary while the driver times a latency.

A latency timed next to a training trial is corrupted (the two share the cores), but stopping the
sweep until every trial has finished would idle the machine. The driver raises a gate instead:

* driver (:class:`PauseGate`): create the gate file, wait until every live trial has reached a
  step boundary once (a *ready* marker) and none holds a *busy* marker, time, remove the gate
  file. A trial that does not let go within the wait is reported (``pause`` yields False) so the
  caller can try again later or record the latency as not idle.
* trial (:class:`TrialGate`): hold ``busy-<number>`` while computing, from the first line of the
  trainable (its imports and set-up compute too). At each step boundary :meth:`TrialGate.pause`
  drops it and waits while the gate is up; around a blocking ``tune.report`` :meth:`TrialGate.idle`
  drops it too (a Ray function trainable blocks in report until the driver takes the result, and
  the driver may be the one waiting at the gate). Either marks ``ready-<number>`` the first time.

A trial started before its latency was timed (``hold``) waits at its first step boundary until the
driver has timed it (:meth:`PauseGate.release`): caught there, it costs the other trials only
their own next boundary, where a gate raised later would have to wait for it to get through the
building and first step that follow.

A launched trial without a ready marker is starting: its worker boots, imports torch, builds its
teachers and crops, none of it at a step boundary, so the driver never times then (:meth:`ready`
tells it whether a try could succeed soon). Ordering makes the rest safe without locks: a trial
creates its busy marker *before* it looks at the gate and the driver raises the gate *before* it
looks at the markers, so whenever the driver sees no busy marker, a trial that starts computing
afterwards sees the gate and stops first. Files, not Ray calls: a ``stat`` per training step is far
cheaper than an RPC, and a trial blocked in report cannot answer one. Local Ray only (the files
live in the results folder; trials on other hosts would not see them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterator
from pathlib import Path

GATE_FOLDER = "pause-gate"
"""Inside the results' ``ray/`` folder."""
_GATE_FILE = "raised"
_POLL_S = 0.005


def _busy(folder: Path, number: int) -> Path:
    return folder / f"busy-{number}"


def _ready(folder: Path, number: int) -> Path:
    return folder / f"ready-{number}"


def _released(folder: Path, number: int) -> Path:
    return folder / f"released-{number}"


class PauseGate:
    """Driver side: :meth:`pause` the trials numbered `numbers` (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lower()  # a gate left up by a killed driver would stop every trial of a resume

    @property
    def raised(self) -> bool:
        return (self.folder / _GATE_FILE).exists()

    def raise_(self) -> None:
        (self.folder / _GATE_FILE).touch()

    def lower(self) -> None:
        (self.folder / _GATE_FILE).unlink(missing_ok=True)

    def busy(self, numbers: Collection[int]) -> list[int]:
        """Those of `numbers` computing now: holding a busy marker, or not at a step boundary yet."""
        return [n for n in numbers if _busy(self.folder, n).exists() or not _ready(self.folder, n).exists()]

    def ready(self, numbers: Collection[int]) -> bool:
        """Every trial in `numbers` is past its start (has reached a step boundary): a pause now
        costs them at most a step."""
        return all(_ready(self.folder, n).exists() for n in numbers)

    def release(self, number: int) -> None:
        """Let a trial that holds at its first step boundary go on (see the module docstring)."""
        _released(self.folder, number).touch()

    @contextlib.contextmanager
    def pause(self, numbers: Collection[int], wait_s: float) -> Iterator[bool]:
        """Raise the gate, wait up to `wait_s` for every trial in `numbers` to stop computing (ready
        and not busy); yield whether they all did; lower the gate on exit (also on error)."""
        self.raise_()
        try:
            deadline = time.monotonic() + wait_s
            while (busy := self.busy(numbers)) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            yield not busy
        finally:
            self.lower()


class TrialGate:
    """Trial side: a busy marker held while computing, dropped while paused or reporting."""

    def __init__(self, folder: str | Path, number: int, hold: bool = False):
        self.folder = Path(folder)
        self._gate = self.folder / _GATE_FILE
        self._marker = _busy(self.folder, number)
        self._ready = _ready(self.folder, number)
        self._released = _released(self.folder, number)
        self._is_ready = False
        self._hold = hold
        self.paused_s = 0.0
        """Seconds spent waiting at the gate so far."""

    def start(self) -> float:
        """Become busy (before any computing); returns the seconds waited at a raised gate."""
        return self._enter()

    def stop(self) -> None:
        """Done computing (the trial ended); stays ready (no more computing to wait for)."""
        self._ready.touch()
        self._marker.unlink(missing_ok=True)

    def pause(self) -> float:
        """At a step boundary: wait while the gate is up (and, holding, at the first one until
        released); the seconds waited (0.0 when it is down)."""
        first = not self._is_ready
        self._mark_ready()
        if first and self._hold:
            t0 = time.perf_counter()
            self._marker.unlink(missing_ok=True)
            while not self._released.exists():
                time.sleep(_POLL_S)
            held = time.perf_counter() - t0
            self.paused_s += held
            return held + self._enter()
        if not self._gate.exists():
            return 0.0
        return self._enter()  # drops the marker once, while the gate is up (never off, on, off)

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """Not computing inside the block (a blocking report); busy again after it, gate permitting."""
        self._mark_ready()  # a trial that reports trains steps: past its start
        self._marker.unlink(missing_ok=True)
        try:
            yield
        finally:
            self._enter()

    def _mark_ready(self) -> None:
        if not self._is_ready:  # once: from now on step boundaries come every step
            self._ready.touch()
            self._is_ready = True

    def _enter(self) -> float:
        t0 = time.perf_counter()
        while True:
            self._marker.touch()
            if not self._gate.exists():  # looked at after the marker exists: see the module docstring
                break
            self._marker.unlink(missing_ok=True)
            while self._gate.exists():
                time.sleep(_POLL_S)
        waited = time.perf_counter() - t0
        self.paused_s += waited
        return waited


def gate_folder(ray_dir: str | Path) -> Path:
    """The gate folder of a sweep whose Ray Tune runs live in `ray_dir` (absolute: Ray Tune starts
    each trial in its own working directory)."""
    return Path(ray_dir).resolve() / GATE_FOLDER
