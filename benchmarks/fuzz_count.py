"""Run the malformed-input table of tests/test_fuzz_cli.py through the real CLI and print how many
cases get the promised answer (exit 2, one line naming file/key/argument, no traceback, in time).

    PYTHONPATH=. RADIO_NAS_CACHE=$(mktemp -d) python benchmarks/fuzz_count.py [--verbose] [case-id ...]
"""
from __future__ import annotations

import platform
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_fuzz_cli as fz


def main(argv: list[str]) -> int:
    verbose = "--verbose" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    cases = [c for c in fz.CASES if not wanted or c.id in wanted]
    base = fz.make_base()
    try:
        study = fz.make_study_folder(base) if any(c.needs_study for c in cases) else None
        rows = []
        for case in cases:
            ok, why, seconds = fz.run_case(case, base, study)
            if why == fz.ROOT_SKIP:
                print(f"SKIP            {case.id:<28} {why}", flush=True)
                continue
            rows.append((case.id, ok, seconds, why))
            print(f"{'PASS' if ok else 'FAIL'}  {seconds:6.2f} s  {case.id:<28} {why if verbose or not ok else ''}"[:400],
                  flush=True)
    finally:
        for p in base.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
    passed = sum(r[1] for r in rows)
    import torch
    print(f"\nmachine: {platform.node()} {platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}")
    print(f"answer time per case: median {statistics.median(r[2] for r in rows):.2f} s, "
          f"max {max(r[2] for r in rows):.2f} s")
    skipped = len(cases) - len(rows)
    print(f"fuzz table: {passed}/{len(rows)} cases answered with one line and exit 2"
          + (f" ({skipped} skipped: {fz.ROOT_SKIP})" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
