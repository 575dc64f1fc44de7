"""The pause gate: trials running side by side stop at a step boundary while the driver times a latency.

A latency timed next to a training trial is corrupted (the two share the cores), but stopping the
sweep until every trial has finished would idle the machine. The driver raises a gate instead:

* driver (:class:`PauseGate`): create the gate file, wait until no live trial holds a *busy*
  marker, time, remove the gate file. A trial that does not let go within the wait is reported
  (``pause`` yields False) so the caller can try again later or record the latency as not idle.
* trial (:class:`TrialGate`): hold ``busy-<number>`` while computing. At each step boundary
  :meth:`TrialGate.pause` drops it and waits while the gate is up; around a blocking
  ``tune.report`` :meth:`TrialGate.idle` drops it too (a Ray function trainable blocks in report
  until the driver takes the result, and the driver may be the one waiting at the gate).

Ordering makes it safe without locks: a trial creates its marker *before* it looks at the gate
and the driver raises the gate *before* it looks at the markers, so whenever the driver sees no
marker, a trial that starts computing afterwards sees the gate and stops first. A trial that has
not started (no marker) is not computing. Files, not Ray calls: a ``stat`` per training step is
far cheaper than an RPC, and a trial blocked in report cannot answer one. Local Ray only (the
files live in the results folder; trials on other hosts would not see them).
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
        """Those of `numbers` computing now (holding a busy marker)."""
        return [n for n in numbers if _busy(self.folder, n).exists()]

    @contextlib.contextmanager
    def pause(self, numbers: Collection[int], wait_s: float) -> Iterator[bool]:
        """Raise the gate, wait up to `wait_s` for every trial in `numbers` to stop computing; yield
        whether they all did; lower the gate on exit (also on error)."""
        self.raise_()
        try:
            deadline = time.monotonic() + wait_s
            while self.busy(numbers) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            yield not self.busy(numbers)
        finally:
            self.lower()


class TrialGate:
    """Trial side: a busy marker held while computing, dropped while paused or reporting."""

    def __init__(self, folder: str | Path, number: int):
        self.folder = Path(folder)
        self._gate = self.folder / _GATE_FILE
        self._marker = _busy(self.folder, number)
        self.paused_s = 0.0
        """Seconds spent waiting at the gate so far."""

    def start(self) -> float:
        """Become busy (before any computing); returns the seconds waited at a raised gate."""
        return self._enter()

    def stop(self) -> None:
        """Done computing (the trial ended)."""
        self._marker.unlink(missing_ok=True)

    def pause(self) -> float:
        """At a step boundary: wait while the gate is up; the seconds waited (0.0 when it is down)."""
        if not self._gate.exists():
            return 0.0
        self._marker.unlink(missing_ok=True)
        return self._enter()

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """Not computing inside the block (a blocking report); busy again after it, gate permitting."""
        self._marker.unlink(missing_ok=True)
        try:
            yield
        finally:
            self._enter()

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
