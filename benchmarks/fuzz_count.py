"""Run the malformed-input table of tests/test_fuzz_cli.py through the real CLI and print how many
cases get the promised answer (exit 2, one line naming file/key/argument, no traceback, in time).

    PYTHONPATH=. RADIO_NAS_CACHE=$(mktemp -d) python benchmarks/fuzz_count.py [--verbose] [case-id ...]
    PYTHONPATH=. python benchmarks/fuzz_count.py --loader     # how long the YAML loader takes to answer

The per-case time is the whole CLI process (Python and package start-up included).
"""

from __future__ import annotations

import platform
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_fuzz_cli as fz
from conftest import _make_study


def loader_table(repeats: int = 21) -> None:
    """Median milliseconds for radio_nas._config.parse_yaml to answer, in-process (no start-up)."""
    import time

    from radio_nas._config import ConfigError, parse_yaml

    repo = Path(__file__).resolve().parents[1]
    inputs = {
        "billion laughs (10^9 leaves, 1 kB)": "".join(
            f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]\n" for i in range(10)
        ),
        "nesting 5000 deep": "a: " + "[" * 5000 + "]" * 5000,
        "recursive alias": "a: &r {x: *r}",
        "duplicate key": "a: 1\nb: 2\na: 3",
        "search_spaces/mra.yaml (accepted)": (repo / "search_spaces" / "mra.yaml").read_text(),
        "pipelines/distill_cpu.yaml (accepted)": (repo / "pipelines" / "distill_cpu.yaml").read_text(),
    }
    print(f"{'input':<40} {'answer':<10} {'median ms':>10} {'max ms':>8}")
    for name, text in inputs.items():
        times, answer = [], ""
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                parse_yaml(text)
                answer = "accepted"
            except ConfigError:
                answer = "refused"
            times.append(time.perf_counter() - t0)
        print(f"{name:<40} {answer:<10} {statistics.median(times) * 1e3:>10.2f} {max(times) * 1e3:>8.2f}")


def main(argv: list[str]) -> int:
    if "--loader" in argv:
        import yaml

        loader_table()
        print(
            f"\nmachine: {platform.node()} {platform.machine()}, python {platform.python_version()}, "
            f"pyyaml {yaml.__version__}; 21 repeats each"
        )
        return 0
    verbose = "--verbose" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    cases = [c for c in fz.CASES if not wanted or c.id in wanted]
    base = fz.make_base()
    try:
        study = fz.make_study_folder(base, _make_study) if any(c.needs_study for c in cases) else None
        rows = []
        for case in cases:
            ok, why, seconds = fz.run_case(case, base, study)
            if why == fz.ROOT_SKIP:
                print(f"SKIP            {case.id:<28} {why}", flush=True)
                continue
            rows.append((case.id, ok, seconds, why))
            print(
                f"{'PASS' if ok else 'FAIL'}  {seconds:6.2f} s  {case.id:<28} {why if verbose or not ok else ''}"[:400],
                flush=True,
            )
    finally:
        for p in base.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
    passed = sum(r[1] for r in rows)
    import torch

    print(
        f"\nmachine: {platform.node()} {platform.machine()}, python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )
    print(
        f"answer time per case: median {statistics.median(r[2] for r in rows):.2f} s, "
        f"max {max(r[2] for r in rows):.2f} s"
    )
    skipped = len(cases) - len(rows)
    print(
        f"fuzz table: {passed}/{len(rows)} cases answered with one line and exit 2"
        + (f" ({skipped} skipped: {fz.ROOT_SKIP})" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
