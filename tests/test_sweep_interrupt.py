"""A sweep stopped by Ctrl-C (SIGINT), through the real command: exit 130 with one line, every
finished trial kept, no Ray process left, and a resume that re-runs nothing finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from radio_nas.search.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "search_spaces" / "smoke.yaml"
State = optuna.trial.TrialState
pytestmark = pytest.mark.slow


def load(results: Path) -> optuna.Study:
    from radio_nas.study.storage import open_study as open_for_reading

    return open_for_reading(results).study


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (the Ray processes a driver started, and their workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds nothing, and init reaps it


def test_sigint_mid_sweep_exits_130_keeps_trials_and_resumes(tmp_path, wait_mid_sweep):
    results = tmp_path / "interrupted"
    steps = {"pipeline.overrides.steps": 30}  # long enough that the interrupt lands while one trains
    cmd = [sys.executable, "-m", "radio_nas", "sweep", str(SMOKE), "--results", str(results), "--trials", "3"]
    cmd += ["--num-cpus", "2", "--set", "pipeline.overrides.steps=30"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env={**os.environ}
    )
    ray_processes: set[int] = set()
    try:
        wait_mid_sweep(results, tick=lambda: ray_processes.update(descendants(proc.pid)))
        ray_processes |= descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole process group
        err = proc.communicate(timeout=120)[1].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert lines[0].startswith("radio-nas sweep: interrupted: ") and str(results) in lines[0]
    assert ray_processes, "the driver started Ray processes"
    deadline = time.monotonic() + 15
    while any(alive(p) for p in ray_processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in ray_processes if alive(p)], "Ray processes outlived the interrupted sweep"

    study = load(results)
    finished = {t.number: t.datetime_complete for t in study.trials if t.state == State.COMPLETE}
    assert finished and not [t.number for t in study.trials if t.state == State.RUNNING]
    cut_short = [t for t in study.trials if t.user_attrs.get("orphaned")]
    assert cut_short, "the trial that was running is marked to run again"

    out = run_sweep(SMOKE, results_dir=results, trials=3, num_cpus=2, progress=None, overrides=steps)
    study = load(results)
    assert out["trained"] == 3
    for number, completed in finished.items():  # kept, not re-run
        assert study.trials[number].datetime_complete == completed
    ok = [t for t in study.trials if t.state == State.COMPLETE and t.user_attrs.get("duplicate_of") is None]
    assert len(ok) == 3  # exactly the missing ones were trained


# Loaded by every Python process of the sweep (driver and Ray workers) from PYTHONPATH: the first
# weights file is written, every later one fails as on a full disk.
FULL_DISK = """\
import errno, os
_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith("student.safetensors"):
        try:
            os.close(os.open(os.environ["RADIO_NAS_TEST_FIRST_WRITE"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst)) from None
    return _replace(src, dst, *args, **kwargs)
os.replace = replace
"""


def test_a_full_disk_stops_the_sweep_with_one_line_and_loses_nothing(tmp_path):
    results = tmp_path / "full"
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(FULL_DISK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), str(REPO)]),
        "RADIO_NAS_TEST_FIRST_WRITE": str(tmp_path / "first-write"),
    }
    cmd = [sys.executable, "-m", "radio_nas", "sweep", str(SMOKE), "--results", str(results), "--trials", "3"]
    proc = subprocess.Popen(
        [*cmd, "--num-cpus", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    ray_processes: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            ray_processes |= descendants(proc.pid)
            time.sleep(0.5)
        err = proc.communicate(timeout=30)[1].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode not in (0, None), err[-2000:]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert "no space left on device" in lines[0].lower() and str(results) in lines[0]
    assert not [p for p in ray_processes if alive(p)], "Ray processes outlived the stopped sweep"

    study = load(results)
    finished = {t.number: t.datetime_complete for t in study.trials if t.state == State.COMPLETE}
    # the trial whose write failed: stopped with the sweep (orphaned) or recorded failed on the full disk
    full = [t for t in study.trials if t.state == State.FAIL]
    states = [(t.number, t.state.name, t.user_attrs.get("failure_reason")) for t in study.trials]
    assert len(finished) == 1 and len(full) == 1, f"it stopped at the first write that failed: {states}"
    queued = [t for t in study.trials if t.state == State.WAITING]
    assert [t.system_attrs.get("fixed_params") for t in queued] == [full[0].params]  # it trains again on resume

    out = run_sweep(SMOKE, results_dir=results, trials=3, num_cpus=2, progress=None)
    study = load(results)
    assert out["trained"] == 3
    for number, completed in finished.items():  # kept, not re-run
        assert study.trials[number].datetime_complete == completed
    ok = [t for t in study.trials if t.state == State.COMPLETE]
    assert any(t.params == full[0].params for t in ok)  # the variant the full disk cut off was trained
