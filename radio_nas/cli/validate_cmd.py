"""``radio-nas validate SPACE.yaml``: does a short trial rank variants like a long one?

    radio-nas validate search_spaces/mra.yaml --variants 6 --budgets 1,4 --seeds 2
    radio-nas validate --from results/mra                 # the Pareto set of an existing sweep
    radio-nas validate search_spaces/smoke.yaml --budgets 1,2 --seeds 2 --json

Trains each variant at every budget multiple (1 = the pipeline's steps) with each seed, through
the sweep machinery (its own Optuna study in results/<name>-validate/), then reports Kendall tau
and Spearman rho between the rankings (bootstrap CI over variants), the seed noise of fidelity and
the share of neighbour gaps larger than twice that noise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from radio_nas.cli._checks import int_at_least
from radio_nas.cli._options import add_local_ray_options, add_set_option


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate",
        help="check that short trials rank variants like longer ones (and above seed noise)",
        description="Train K variants at several trial lengths and seeds through the sweep machinery; report "
        "rank agreement (Kendall tau, Spearman rho, bootstrap CI), seed noise and gap share.",
    )
    p.add_argument("space", nargs="?", help="search-space YAML (optional with --from: the sweep's own copy)")
    p.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="validate the Pareto set of this sweep (results/<name>) instead of sampling",
    )
    p.add_argument(
        "--variants",
        type=int_at_least(1),
        metavar="K",
        help="variants to compare (default 6 sampled; with --from the Pareto set, at least 3)",
    )
    p.add_argument(
        "--budgets",
        default="1,4",
        metavar="M,M",
        help="trial-length multiples of the pipeline's steps, e.g. 0.5,1,4 (default 1,4)",
    )
    p.add_argument(
        "--seeds", type=int_at_least(1), default=2, metavar="S", help="seeds per variant and budget (default 2)"
    )
    p.add_argument(
        "--steps-only",
        action="store_true",
        help="scale only steps with the budget (default: also data.train_size and eval.every)",
    )
    p.add_argument("--boot", type=int_at_least(1), default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: results/<name>-validate)")
    p.add_argument("--address", metavar="ADDR", help="an existing Ray cluster; default: start a local Ray")
    add_local_ray_options(p)
    add_set_option(p)
    p.add_argument(
        "--trust-teachers",
        action="store_true",
        help="with --from and no space file: run the sweep's own pipeline even when its teachers "
        "load code (torch.hub hubconf.py, remote code, TorchScript); only for folders you trust",
    )
    p.add_argument(
        "--no-train",
        action="store_true",
        help="only analyse what the validation's study holds now (while it runs or after a stop)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (validation.json) on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas._config import ConfigError, parse_assignment
    from radio_nas.cli import print_json
    from radio_nas.validate import ValidateSettings
    from radio_nas.validate.run import run_validation

    settings = ValidateSettings(
        variants=args.variants,
        budgets=_budgets(args.budgets),
        seeds=args.seeds,
        scale_data=not args.steps_only,
        n_boot=args.boot,
    )
    overrides = dict(parse_assignment(a) for a in args.set)
    if args.space is None and args.from_dir is None:
        raise ConfigError("give a search-space file, or --from a sweep's results folder", key="space")
    if args.space is None and args.from_dir is not None and not args.trust_teachers:
        _refuse_code_teachers(args.from_dir, overrides)
    if args.address:
        from radio_nas.cli._checks import check_address

        check_address(args.address)
    if args.results:
        from radio_nas.cli._checks import writable_dir

        writable_dir(args.results, "--results", create=False)
    progress = (
        (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else (lambda line: print(line, flush=True))
    )
    out = run_validation(
        args.space,
        settings,
        from_dir=args.from_dir,
        results_dir=args.results,
        overrides=overrides,
        address=args.address,
        num_cpus=args.num_cpus,
        wall_time=args.time,
        train=not args.no_train,
        progress=progress,
    )
    if args.json:
        print_json(out)
    else:
        from radio_nas.validate.analysis import format_markdown

        print(format_markdown(out))
        rec = out.get("recommendation")
        noise = out["noise"]["threshold"]
        print(f"\nnoise threshold (2x median seed std at 1x): {'n/a' if noise is None else format(noise, '.4f')}")
        print(
            "recommended trial length: "
            + (
                f"{rec['steps']} steps ({rec['multiple']:g}x; tau {rec['kendall_tau']:.2f} against {rec['against']:g}x)"
                if rec
                else "none of the budgets agrees with a 4x longer run at tau >= 0.7" + _closest(out.get("closest_4x"))
            )
        )
        print(f"written: {out['results_dir']}/validation.json, validation.md, {out['plot'] or '(no plot)'}")
    return 0


def _refuse_code_teachers(from_dir: str, overrides: dict[str, Any]) -> None:
    """The sweep's own copy of its space (someone else's folder, maybe) may not build teachers that
    run code of their own without --trust-teachers."""
    from pathlib import Path

    from radio_nas._config import ConfigError
    from radio_nas.distill.teachers import code_loading_teachers
    from radio_nas.search.space import load_space
    from radio_nas.study.layout import SPACE_COPY

    copy = Path(from_dir) / SPACE_COPY
    if not copy.is_file():
        return  # run_validation names the missing file
    for i, t in code_loading_teachers(load_space(copy, overrides).pipeline):
        raise ConfigError(
            f"teacher {t.name!r} ({t.adapter}:{t.model}) of this sweep's pipeline would load and run code "
            "named by the folder; pass --trust-teachers if you trust it, or give your own space file",
            file=copy,
            key=f"pipeline.teachers[{i}]",
        )


def _closest(c: dict[str, Any] | None) -> str:
    return f" (closest: {c['short_steps']} -> {c['long_steps']} steps, tau {c['kendall_tau']:.2f})" if c else ""


def _budgets(text: str) -> tuple[float, ...]:
    import math

    from radio_nas._config import ConfigError

    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers like 1,4; got {text!r}", key="--budgets") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"expected positive, finite multiples like 1,4; got {text!r}", key="--budgets")
    return values
