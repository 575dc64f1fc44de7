"""Build (or resume) the exhaustive table of a finite search space and export it as CSV.

Runs ``radio-nas sweep SPACE --set sampler.name=grid`` over every point of the space (wall-time
budget lifted, trials = grid size) into a results folder, then writes the table that
``radio-nas replay`` reads. Killed or interrupted, the same command resumes the sweep: finished
trials are kept and none is re-run. With ``--export-only`` it only writes the CSV of a finished study.

    python benchmarks/exhaustive.py search_spaces/mra.yaml                        # results/mra-exhaustive
    python benchmarks/exhaustive.py search_spaces/mra.yaml --csv benchmarks/mra_exhaustive.csv
    python benchmarks/exhaustive.py search_spaces/smoke.yaml --set parameters.pipeline.optim.lr=1e-3 \\
        --results /tmp/smoke-grid --csv /tmp/smoke.csv
    radio-nas replay benchmarks/mra_exhaustive.csv --samplers tpe,nsga2,random,gp --trials 24 --repeats 10

CSV schema: see :func:`radio_nas.simulate.write_table` (one row per point; the sampled
parameters, arch_id, pipeline_id, status ok/infeasible/failed, params, gmacs, latency_ms, fidelity
and the other objective metrics, steps, train_seconds, the learning curve as JSON
``[{"step", "fidelity", "seconds"}]``), after a ``# {json}`` first line holding the space.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radio_nas._config import ConfigError, parse_assignment


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("space", help="search-space YAML with finitely many values per parameter")
    ap.add_argument("--results", metavar="DIR", help="results folder (default: results/<name>-exhaustive)")
    ap.add_argument("--csv", metavar="PATH", help="table to write (default: <results>/exhaustive.csv)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the space file (as in radio-nas sweep --set)",
    )
    ap.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all)")
    ap.add_argument("--export-only", action="store_true", help="do not train; export a finished study")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"exhaustive: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from radio_nas.simulate import write_table
    from radio_nas.simulate.exhaustive import build_exhaustive, exhaustive_space

    space = exhaustive_space(args.space, dict(parse_assignment(a) for a in args.set))
    results = Path(args.results) if args.results else Path("results") / f"{space.name}-exhaustive"
    table = build_exhaustive(space, results, num_cpus=args.num_cpus, train=not args.export_only)
    path = write_table(table, args.csv or results / "exhaustive.csv")
    counts = {s: sum(r.status == s for r in table.rows) for s in ("ok", "infeasible", "failed")}
    print(f"exhaustive: {len(table.rows)} points ({counts}) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
