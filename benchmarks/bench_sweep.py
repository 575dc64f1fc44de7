"""Sweep overhead: sweep wall time minus the sum of trial times, in total and per trial.

    python benchmarks/bench_sweep.py                 # smoke and mra, fresh results folders in a temp dir
    python benchmarks/bench_sweep.py smoke           # one space

"Trial time" is run_trial's own wall_s (training + teacher cache + evaluation, in the Ray worker).
Overhead is everything else: Ray start, Tune scheduling and worker start-up, sampling, building
and validating each variant, GMACs counting and latency timing in the driver, SQLite writes.
Prints a Markdown table with the machine and versions, then each sweep's summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spaces", nargs="*", default=["smoke", "mra"])
    parser.add_argument("--results-root", help="where the fresh results folders go (default: a temp dir)")
    args = parser.parse_args()
    for k, v in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}.items():
        os.environ.setdefault(k, v)
    from radio_nas.search.sweep import run_sweep

    root = Path(args.results_root or tempfile.mkdtemp(prefix="bench-sweep-"))
    rows, summaries = [], []
    for name in args.spaces:
        space = REPO / "search_spaces" / f"{name}.yaml"
        lines: list[str] = []
        t0 = time.monotonic()
        out = run_sweep(space, results_dir=root / f"{name}-{int(time.time())}", progress=lines.append)
        wall = time.monotonic() - t0
        trial_sum = sum(out["trial_wall_s"])
        n = len(out["trial_wall_s"])
        over = wall - trial_sum
        rows.append(
            (
                name,
                n,
                out["counts"].get("infeasible", 0),
                wall,
                trial_sum,
                over,
                over / max(n, 1),
                sum(out["trial_seen_s"]) / max(n, 1),
            )
        )
        summaries.append(f"## {name}\n" + lines[-1] if lines else "")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"Machine: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, torch {version('torch')}, "
        f"ray {version('ray')}, optuna {version('optuna')}"
    )
    print(
        "| space | trained | infeasible | sweep wall s | sum of trial wall s | overhead s | overhead s / trial "
        "| trial as seen by the driver s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.2f} | {r[7]:.1f} |")
    print()
    print("\n\n".join(summaries))
    print(f"\nResults under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
