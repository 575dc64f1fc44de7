"""How long ``radio-nas replay`` takes per simulated sweep, per sampler, on an exhaustive table.

    python benchmarks/bench_replay.py benchmarks/mra_exhaustive.csv --trials 24 --repeats 5

Prints a Markdown table (machine and versions first): median and max seconds of one replayed
sweep per sampler (each repeat timed on its own, sampler seeds 0..R-1), and the table's load time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", help="exhaustive table (CSV or results folder)")
    ap.add_argument("--samplers", default="tpe,nsga2,random,gp")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scheduler", default="none")
    args = ap.parse_args(argv)

    import optuna
    import torch

    from radio_nas.simulate import load_table, simulate
    from radio_nas.simulate.simulate import _one_thread

    t0 = time.perf_counter()
    table = load_table(args.table)
    load_s = time.perf_counter() - t0
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}, optuna {optuna.__version__}, "
        f"torch {torch.__version__}"
    )
    print(
        f"table: {args.table} ({len(table.rows)} points), loaded in {load_s:.2f}s; {args.trials} trained trials "
        f"per sweep, scheduler {args.scheduler}\n"
    )
    print("| sampler | sweeps | median s / sweep | max s / sweep |")
    print("|---------|--------|------------------|---------------|")
    for name in [s for s in args.samplers.split(",") if s]:
        times = []
        with _one_thread(name == "gp"):
            for seed in range(args.repeats):
                t0 = time.perf_counter()
                simulate(table, name, trials=args.trials, seed=seed, scheduler=args.scheduler)
                times.append(time.perf_counter() - t0)
        print(f"| {name} | {len(times)} | {statistics.median(times):.2f} | {max(times):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
