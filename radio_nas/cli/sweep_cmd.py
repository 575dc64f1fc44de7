"""``radio-nas sweep SPACE.yaml``: run or resume a sweep (Ray Tune trials, Optuna study).

radio-nas sweep search_spaces/mra.yaml                      # results/mra/study.db
radio-nas sweep search_spaces/mra.yaml --trials 40 --address auto
radio-nas sweep search_spaces/smoke.yaml --storage postgresql://... --json
radio-nas sweep search_spaces/mra.yaml --warm-start results/mra-first    # import trained trials first
radio-nas sweep search_spaces/mra.yaml --fresh                           # old folder moved aside, new study
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from radio_nas.cli._checks import int_at_least
from radio_nas.cli._options import add_local_ray_options, add_set_option


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep",
        help="run or resume a search/ablation sweep from a search-space YAML",
        description="Run (or resume: same command, same results folder) a sweep. Each trial is a short "
        "distillation run in a Ray Tune worker; an Optuna study records everything.",
    )
    p.add_argument("space", help="search-space YAML (see search_spaces/README.md)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: results/<name>)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite:///<results>/study.db)")
    p.add_argument(
        "--address", metavar="ADDR", help="an existing Ray cluster ('auto' or host:port); default: start a local Ray"
    )
    add_local_ray_options(p)
    p.add_argument(
        "--trials", type=int_at_least(1), metavar="N", help="trained trials to reach (overrides budget.trials)"
    )
    p.add_argument("--concurrency", type=int_at_least(1), metavar="N", help="trials at a time (overrides concurrency)")
    add_set_option(p)
    p.add_argument(
        "--warm-start",
        action="append",
        default=[],
        metavar="SRC[,SRC]",
        help="import the trained trials of other sweeps first: a results folder or a storage URL, "
        "optionally URL#STUDY; never retrained, never counted by the budget",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new study: an existing results folder is moved to <folder>.before-<time> (nothing deleted)",
    )
    p.add_argument("--check", action="store_true", help="validate the space and exit (writes nothing)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the outcome) on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas._config import parse_assignment
    from radio_nas.cli import print_json
    from radio_nas.search.space import load_space

    overrides = dict(parse_assignment(a) for a in args.set)
    space = load_space(args.space, overrides)
    _check_places(args, space)
    if args.check:
        info = {
            "name": space.name,
            "hash": space.hash,
            "mode": space.config.mode,
            "parameters": [p.name for p in space.sampled],
            "objectives": space.objective_names,
            "grid_size": space.grid_size(),
        }
        if args.json:
            print_json(info)
        else:
            print(
                f"{args.space}: ok ({space.config.mode}, {len(space.sampled)} varying parameters, "
                f"objectives {', '.join(space.objective_names)})"
            )
        return 0
    from radio_nas.report.report import sweep_pictures
    from radio_nas.search.sweep import run_sweep

    results = args.results if args.results is not None else f"results/{space.name}"
    progress = (
        (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else (lambda line: print(line, flush=True))
    )
    outcome = run_sweep(
        space,
        results_dir=results,
        storage=args.storage,
        address=args.address,
        trials=args.trials,
        wall_time=args.time,
        concurrency=args.concurrency,
        num_cpus=args.num_cpus,
        on_trained=sweep_pictures(results, space.name),
        progress=progress,
        warm_start=args.warm_start or None,
        fresh=args.fresh,
    )
    if args.json:
        print_json(outcome)
    return 0


def _check_places(args: argparse.Namespace, space: Any) -> None:
    """Results folder, storage and Ray address answer before anything starts (nothing is left
    behind: the sweep itself creates its folder once everything is validated)."""
    from pathlib import Path

    from radio_nas.cli._checks import (
        check_address,
        check_storage,
        check_teacher_files,
        writable_dir,
    )

    results = Path(args.results) if args.results else Path("results") / space.name
    writable_dir(results, "--results" if args.results else "results", create=False)
    storage = args.storage or space.config.storage
    if storage:
        check_storage(storage, "--storage" if args.storage else "storage", create=False)
    check_teacher_files(space.pipeline, space.config.pipeline.path or "pipeline")
    if args.address:
        check_address(args.address)
