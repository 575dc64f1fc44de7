"""``radio-nas replay RESULTS``: simulate sweeps of real Optuna samplers against an exhaustive table.

radio-nas replay benchmarks/mra_exhaustive.csv --samplers tpe,nsga2,random,gp --trials 24 --repeats 10
radio-nas replay results/mra-grid --samplers tpe --trials 40 --scheduler moasha --plot replay.png --json
radio-nas replay benchmarks/mra_exhaustive.csv --samplers gp,tpe --warm-start 12   # warm vs cold sweeps
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from radio_nas.cli._options import add_set_option


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "replay",
        help="replay samplers against an exhaustive table (nothing is trained)",
        description="Simulate sweeps on a finished exhaustive study (or the CSV table exported from one): each "
        "proposal of a real Optuna sampler is answered from the table, with the sweep's constraint, "
        "copy and budget rules. Reports, per sampler over the repeats, the median and interquartile "
        "range of the hypervolume ratio to the exhaustive front, the trials needed to reach 95%%, the "
        "share of the exhaustive Pareto set found and the simulated training cost.",
    )
    p.add_argument("results", help="exhaustive table: a results folder / study.db / storage URL, or its CSV")
    p.add_argument(
        "--samplers",
        default="tpe,nsga2,random,gp",
        metavar="LIST",
        help="comma-separated: tpe, nsga2, random, gp, grid (default: tpe,nsga2,random,gp)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="trained trials per simulated sweep (default: the space's budget.trials, else 20)",
    )
    p.add_argument("--repeats", type=int, default=10, metavar="R", help="sweeps per sampler (seeds S..S+R-1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first sampler seed (default 0)")
    p.add_argument(
        "--scheduler",
        default="none",
        choices=["none", "moasha"],
        help="early stopping replayed on the table's learning curves (default none)",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        metavar="STEPS",
        help="scheduler's first rung (default: the space's scheduler.grace_period, else eval.every)",
    )
    p.add_argument("--reduction-factor", type=float, metavar="ETA", help="scheduler's eta (default: the space's)")
    add_set_option(
        p,
        "change sampler.n_startup_trials, scheduler.grace_period, scheduler.reduction_factor or "
        "budget.max_infeasible of the table's space",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="processes for the repeats (default 1; the results do not depend on it)",
    )
    p.add_argument(
        "--warm-start",
        type=int,
        metavar="K",
        help="compare warm and cold sweeps instead: per repeat, a sweep warm-started from a K-trial sweep of "
        "another seed against a cold one; new trainings to reach the cold sweep's hypervolume",
    )
    p.add_argument("--study", metavar="NAME", help="study name when the storage holds several")
    p.add_argument("--plot", metavar="PNG", help="write the hypervolume-ratio curves (vs trials and vs training time)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--runs", action="store_true", help="with --json: include every replayed sweep's curve")
    return p


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from radio_nas._config import ConfigError, parse_assignment
    from radio_nas.cli import print_json
    from radio_nas.simulate import (
        format_replay,
        load_table,
        plot_replay,
        replay,
        space_from_raw,
    )

    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if not samplers:
        raise ConfigError("expected at least one sampler", key="--samplers")
    _check_options(args)
    table = load_table(args.results, study_name=args.study)
    if args.set:
        overrides = dict(parse_assignment(a) for a in args.set)
        space = space_from_raw(table.space.raw, where=str(args.results), overrides=overrides)
        table = dataclasses.replace(table, space=space)
    trials = args.trials if args.trials is not None else table.space.config.budget.trials or 20
    say = lambda line: print(line, file=sys.stderr, flush=True)
    if args.warm_start is not None:
        from radio_nas.simulate import format_warm_start, warm_start_replay

        if args.scheduler != "none":
            raise ConfigError("the warm-start comparison replays sweeps without a scheduler", key="--scheduler")
        warm = warm_start_replay(
            table,
            samplers,
            source_trials=args.warm_start,
            trials=trials,
            repeats=args.repeats,
            seed=args.seed,
            progress=say,
        )
        if args.json:
            if not args.runs:
                for s in warm["samplers"].values():
                    s.pop("runs")
            print_json(warm)
        else:
            print(format_warm_start(warm))
        return 0
    out = replay(
        table,
        samplers,
        trials=trials,
        repeats=args.repeats,
        seed=args.seed,
        scheduler=args.scheduler,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        progress=say,
        jobs=args.jobs,
    )
    if args.plot:
        out["plot"] = str(plot_replay(out, args.plot))
    if args.json:
        if not args.runs:
            out.pop("runs")
        print_json(out)
    else:
        print(format_replay(out))
        if args.plot:
            print(f"Plot: {out['plot']}")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """What the table does not decide, refused before the table is read (one line, exit 2)."""
    import math
    from pathlib import Path

    from radio_nas._config import ConfigError

    for key, value in (
        ("--trials", args.trials),
        ("--repeats", args.repeats),
        ("--grace-period", args.grace_period),
        ("--warm-start", args.warm_start),
        ("--jobs", args.jobs),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"expected an integer >= 1, got {value}", key=key)
    eta = args.reduction_factor
    if eta is not None and (not eta > 1 or not math.isfinite(eta)):  # NaN compares false
        raise ConfigError(f"expected a finite number > 1, got {eta}", key="--reduction-factor")
    if args.plot is not None and Path(args.plot).is_dir():
        raise ConfigError(f"{args.plot} is a folder; expected the path of a PNG file to write", key="--plot")
