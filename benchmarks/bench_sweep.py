"""The README main command before and after trials ran side by side: wall time and overhead.

    python benchmarks/bench_sweep.py                      # mra, 24 trials: before (b6a8b96) then after (this tree)
    python benchmarks/bench_sweep.py --space smoke        # the CI-sized space, for a quick look
    python benchmarks/bench_sweep.py --only after         # one side

"Before" is commit b6a8b96 (one trial at a time, ``resources: {cpu: 2}``, ``concurrency: 1``; its
pipeline's ``student.threads: 1`` means one torch thread), checked out into a temporary git
worktree; "after" is this working tree (``concurrency: 2``, one CPU each, latencies timed behind the
pause gate). Each side runs the README main command (``radio-nas sweep
search_spaces/<space>.yaml``, PCA pictures and progress lines included; only the wall-time stop is
lifted so a loaded machine still trains the whole budget) from its own tree in a fresh process, on
a fresh results folder and a fresh latency cache (so both time every latency they need); the
teacher cache is shared and warmed first (untimed).

"Trial time" is run_trial's own wall_s in the Ray worker (training, teacher cache, evaluation;
after: less any pause). Overhead is the share of trial slots not spent in trials:
``1 - sum(trial s) / (concurrency * sweep wall s)`` (at concurrency 1: wall minus the trial sum):
Ray and worker start, sampling, building and validating, GMACs and latency timing in the driver
(and, after, the running trials' pauses while it times), SQLite writes, PCA pictures, and a slot
left idle while the last trial finishes. "No trial training" is the looser reading: the time in
which no trial trained at all (the command's wall minus the union of run_trial spans, plus the time
the pause gate was up; a trial holding at its first step boundary for its latency counts as
training, which it is not for at most a turn of Tune's loop while no other trial trains). Sweep wall is
``run_sweep``'s own clock; process wall adds Python start and imports. Prints the machine,
versions and load average, then the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this tree's radio_nas, whatever is installed
BEFORE = "b6a8b96"
_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, sys, time
    t0 = time.monotonic()
    import optuna
    from radio_nas.cli import main
    # the README main command (PCA pictures, progress lines) without a wall-time stop, so a loaded
    # machine still trains the whole budget
    buf = io.StringIO()
    began = time.time()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["sweep", sys.argv[1], "--results", sys.argv[2], "--time", "24h", "--json"])
    ended = time.time()
    if rc != 0:
        sys.exit(f"radio-nas sweep exited {rc}")
    out = json.loads(buf.getvalue())
    study = optuna.load_study(study_name=out["study"], storage=out["storage"])
    # by the sampled parameters (the same space on both sides; ids and pipeline records may differ
    # between code versions)
    trained = [
        json.dumps(t.params, sort_keys=True)
        for t in study.trials
        if t.user_attrs.get("status") == "ok" and t.user_attrs.get("duplicate_of") is None
    ]
    ok = [t.values[0] for t in study.trials if t.user_attrs.get("status") == "ok" and t.values]
    spans = []  # when each trained trial's run_trial ran (epoch s; before b6a8b96: from its end and wall)
    for t in study.trials:
        m = t.user_attrs.get("metrics") or {}
        if t.user_attrs.get("status") != "ok" or t.user_attrs.get("duplicate_of") is not None:
            continue
        end = m.get("finished_at") or t.datetime_complete.timestamp()
        spans.append((m.get("started_at") or end - m["wall_s"], end))
    busy, reach = 0.0, began
    for a, b in sorted(spans):  # the union of the spans
        a = max(a, reach)
        if b > a:
            busy, reach = busy + b - a, b
    print("RESULT " + json.dumps({
        "wall_s": out["wall_s"], "trial_wall_s": out["trial_wall_s"], "counts": out["counts"],
        "trained": out["trained"], "gate_pauses": out.get("gate_pauses"), "gate_s": out.get("gate_s"),
        "variants": sorted(set(trained)), "best_fidelity": max(ok) if ok else None,
        "stop_reason": out["stop_reason"], "process_wall_s": time.monotonic() - t0,
        "none_training_s": (ended - began) - busy + (out.get("gate_s") or 0.0), "main_s": ended - began,
    }))
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mra", help="a space under search_spaces/ (default mra)")
    parser.add_argument("--only", choices=["before", "after"], help="run one side only")
    parser.add_argument("--before", default=BEFORE, help=f"the commit run as 'before' (default {BEFORE})")
    parser.add_argument("--root", help="where results, caches and the worktree go (default: a temp dir)")
    args = parser.parse_args()

    root = Path(args.root or tempfile.mkdtemp(prefix="bench-sweep-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    from radio_nas._util import cache_root

    teachers = cache_root() / "teachers"
    load0 = os.getloadavg()
    print(_header(load0))
    _warm_teachers(args.space, teachers)
    sides = ["before", "after"] if args.only is None else [args.only]
    rows = {}
    for side in sides:
        tree = _before_tree(root, args.before) if side == "before" else REPO
        try:
            rows[side] = _run(side, tree, args.space, root, teachers)
        finally:
            if side == "before":
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"Load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    _table(rows, args.before)
    print(f"\nResults under {root}")
    return 0


def _header(load: tuple[float, float, float]) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {cpu}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, torch {version('torch')}, ray {version('ray')}, "
        f"optuna {version('optuna')}\nLoad average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in load)}"
    )


def _warm_teachers(space: str, teachers: Path) -> None:
    """Build the space's teacher cache once (untimed): both sides then start from a warm cache."""
    from radio_nas.distill import load_pipeline, run_trial
    from radio_nas.search.space import load_space

    pipeline = load_space(REPO / "search_spaces" / f"{space}.yaml").pipeline
    t0 = time.monotonic()
    run_trial(load_pipeline(pipeline, {"steps": 1}), "xt")  # one step: the cache is what it leaves
    print(f"Teacher cache {teachers}: ready in {time.monotonic() - t0:.1f} s (untimed)\n")


def _before_tree(root: Path, commit: str) -> Path:
    tree = root / f"before-{commit}"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True
    )
    return tree


def _run(side: str, tree: Path, space: str, root: Path, teachers: Path) -> dict:
    cache = root / f"cache-{side}"  # a fresh latency cache; the teacher cache is shared
    cache.mkdir(exist_ok=True)
    if not (cache / "teachers").exists():
        (cache / "teachers").symlink_to(teachers, target_is_directory=True)
    results = root / f"{space}-{side}"
    space_file = tree / "search_spaces" / f"{space}.yaml"
    env = {**os.environ, "PYTHONPATH": str(tree), "RADIO_NAS_CACHE": str(cache)}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"[{side}] {space_file} -> {results} ...", flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(space_file), str(results)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"[{side}] the sweep failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(line[len("RESULT ") :])
    import yaml

    cfg = yaml.safe_load(space_file.read_text())
    out["concurrency"] = int(cfg.get("concurrency", 1))
    out["cpu"] = (cfg.get("resources") or {}).get("cpu", 1)
    out["outer_wall_s"] = elapsed
    print(f"[{side}] done in {elapsed:.0f} s", flush=True)
    return out


def _table(rows: dict[str, dict], before: str) -> None:
    print(
        "| side | code | concurrency x cpu | trained | distinct variants | sweep wall s | process wall s "
        "| sum of trial s | mean trial s | overhead (share of slots) | no trial training | gate pauses (s) "
        "| best fidelity |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for side, r in rows.items():
        n = len(r["trial_wall_s"])
        trial_sum = sum(r["trial_wall_s"])
        slots = r["concurrency"] * r["wall_s"]
        over = 1 - trial_sum / slots
        gate = "-" if r.get("gate_pauses") is None else f"{r['gate_pauses']} ({r['gate_s']:.1f})"
        best = "-" if r["best_fidelity"] is None else f"{r['best_fidelity']:.4f}"
        print(
            f"| {side} | {before if side == 'before' else 'this tree'} | {r['concurrency']} x {r['cpu']} "
            f"| {r['trained']} | {len(r['variants'])} | {r['wall_s']:.1f} | {r['process_wall_s']:.1f} "
            f"| {trial_sum:.1f} | {trial_sum / max(n, 1):.1f} | {over:.1%} ({slots - trial_sum:.1f} slot-s) "
            f"| {r['none_training_s'] / r['main_s']:.1%} ({r['none_training_s']:.1f} s) | {gate} | {best} |"
        )
    if "before" in rows and "after" in rows:
        b, a = rows["before"], rows["after"]
        common = len(set(b["variants"]) & set(a["variants"]))
        mean_a, mean_b = (sum(r["trial_wall_s"]) / max(len(r["trial_wall_s"]), 1) for r in (a, b))
        print(
            f"\nafter / before: sweep wall {a['wall_s'] / b['wall_s']:.3f}, process wall "
            f"{a['process_wall_s'] / b['process_wall_s']:.3f}, mean trial {mean_a / mean_b:.3f}; "
            f"variants trained by both: {common}"
        )


if __name__ == "__main__":
    sys.exit(main())
