"""Do the samplers learn the constraints? Share of infeasible proposals over a sweep, today vs before.

    python benchmarks/bench_constraints.py                       # mra.yaml, max_params 1.0e6, tpe/nsga2/gp
    python benchmarks/bench_constraints.py --samplers tpe --seeds 5 --max-params 1.4e6

Runs the real sweep searcher (``StudySearcher``: ask, sample, build, measure params/GMACs/latency,
check constraints, tell) on ``search_spaces/mra.yaml`` with a tight ``max_params``, against a real
Optuna study in a temporary SQLite file, until the space's budget of trained trials is reached.
Nothing is trained: a feasible variant is answered with a stand-in fidelity that depends only on
the variant (a fixed pseudo-random number per configuration plus a small width bonus, so the
samplers have something to rank); GMACs and latency are measured for real (memoised per
architecture). Two ways of telling an infeasible variant are compared on the same code:

* ``before``: PRUNED with a status attribute only, no constraint values (what sweeps did until now);
* ``now``: constraint values recorded (``Trial.set_constraint``) on every measured variant and
  infeasible ones told COMPLETE (NSGA-II and GP only learn from COMPLETE trials; Optuna's
  ``best_trials`` and radio-nas' Pareto candidates still exclude them).

Prints, per sampler and mode, the median over seeds of the infeasible share of all proposals,
of the first half and of the second half of the proposals, and the proposals needed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default=str(REPO / "search_spaces" / "mra.yaml"))
    parser.add_argument("--max-params", type=float, default=1.0e6)
    parser.add_argument("--samplers", default="tpe,nsga2,gp")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    import os

    os.environ.setdefault("RADIO_NAS_CACHE", tempfile.mkdtemp(prefix="bench-constraints-cache-"))
    import optuna
    import torch

    import radio_nas.search.searcher as searcher_module
    from radio_nas.search.optuna_study import default_storage, open_study
    from radio_nas.search.searcher import StudySearcher
    from radio_nas.search.space import load_space
    from radio_nas.search.trainable import FINAL_KEY, RESULT_KEY
    from radio_nas.study import Status, read_trials

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    real_measure = searcher_module.measure_costs
    memo: dict[str, Any] = {}

    def measure(arch_cfg: Any, settings: Any, resolution: tuple[int, int], need_latency: bool) -> Any:
        if arch_cfg.id not in memo:
            memo[arch_cfg.id] = real_measure(arch_cfg, settings, resolution, need_latency)
        return memo[arch_cfg.id]

    searcher_module.measure_costs = measure  # real costs, measured once per architecture

    class Before(StudySearcher):
        """Infeasible variants told PRUNED with no constraint values: the sweep's old behaviour."""

        def _set_constraints(self, trial: Any, costs: dict[str, Any]) -> None:
            pass

        def _finish(self, trial: Any, status: Status, state: Any, **kw: Any) -> None:
            if status is Status.INFEASIBLE:
                state, kw["values"] = optuna.trial.TrialState.PRUNED, None
            super()._finish(trial, status, state, **kw)

    def stand_in(arch: dict[str, Any], pipeline: dict[str, Any]) -> float:
        key = json.dumps([arch, pipeline.get("balancing")], sort_keys=True, default=str)
        return 0.3 + 0.2 * (zlib.crc32(key.encode()) % 1000) / 1000 + 0.002 * arch["width"]

    def run(mode: str, sampler: str, seed: int) -> dict[str, float]:
        # latency is measured for real but with 5 runs (the sweep's 20 only steady the objective)
        overrides = {
            "constraints.max_params": args.max_params,
            "sampler.name": sampler,
            "sampler.seed": seed,
            "latency.runs": 5,
            "latency.warmup": 1,
        }
        space = load_space(args.space, overrides)
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # SQLite commits without disk syncs
        with tempfile.TemporaryDirectory(dir=shm) as tmp:
            results = Path(tmp) / "r"
            study = open_study(space, results, default_storage(results))
            cls = Before if mode == "before" else StudySearcher
            target = space.config.budget.trials or 24
            s = cls(space, study, results, trials=target, progress=None)
            for i in range(10 * target):
                config = s.suggest(f"t{i}")
                if not isinstance(config, dict):
                    break
                fid = stand_in(config["arch"], config["pipeline"])
                run_out = {"status": "ok", "failure_reason": None, "fidelity": fid, "steps": 1, "wall_s": 0.0}
                s.on_trial_complete(f"t{i}", {FINAL_KEY: True, RESULT_KEY: json.dumps(run_out)})
            records = [r for r in read_trials(study) if r.state != "WAITING"]
            flags = [r.status is Status.INFEASIBLE for r in records]
            half = len(flags) // 2
            trained = sum(r.is_candidate for r in records)
            return {
                "proposals": len(flags),
                "share": sum(flags) / len(flags),
                "first": sum(flags[:half]) / max(half, 1),
                "second": sum(flags[half:]) / max(len(flags) - half, 1),
                "trained": trained,
            }

    print(f"# bench_constraints: {Path(args.space).name}, max_params {args.max_params:g}, {args.seeds} seeds")
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, optuna {optuna.__version__}, torch {torch.__version__}"
    )
    print("| sampler | mode | proposals (median) | infeasible share | first half | second half | trained |")
    print("|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for sampler in args.samplers.split(","):
        for mode in ("before", "now"):
            runs = [run(mode, sampler, seed) for seed in range(args.seeds)]

            def med(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            print(
                f"| {sampler} | {mode} | {med('proposals'):.0f} | {med('share'):.2f} | {med('first'):.2f} | "
                f"{med('second'):.2f} | {med('trained'):.0f} |",
                flush=True,
            )
    print(
        f"# {time.perf_counter() - started:.0f} s; medians over seeds 0..{args.seeds - 1}; shares of all proposals "
        "(copies of trained variants count as proposals)"
    )


if __name__ == "__main__":
    main()
