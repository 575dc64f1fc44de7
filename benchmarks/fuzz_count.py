"""Run the malformed-input table of tests/test_fuzz_cli.py through the real CLI and print how many
cases get the promised answer (exit 2 with one line naming file/key/argument, or the case's own exit
code and note; no traceback; in time; nothing written where it should not be), per command.

    PYTHONPATH=. RADIO_NAS_CACHE=$(mktemp -d) python benchmarks/fuzz_count.py [--verbose] [case-id ...]
    PYTHONPATH=. python benchmarks/fuzz_count.py --before REV [--after REV2]   # before/after per command
    PYTHONPATH=. python benchmarks/fuzz_count.py --loader     # how long the YAML loader takes to answer

The per-case time is the whole CLI process (Python and package start-up included). ``--before``
(and ``--after``; default: the working tree) unpacks REV (``git archive``, nothing in the repository
changes) into a temporary folder and runs today's table with that code; there each command may
allocate at most 6 GiB (RLIMIT_DATA), since code that does not refuse an absurd size would otherwise
take the machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_fuzz_cli as fz
from conftest import _make_study

REPO = Path(__file__).resolve().parents[1]


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


BEFORE_CAP = 6 * 2**30


def run_table(cases: list, base: Path, study: Path | None, code: Path, label: str, verbose: bool, cap: int | None):
    """{case id: (passed, seconds)} on the code at `code`; skipped cases are left out."""
    rows = {}
    for case in cases:
        ok, why, seconds = fz.run_case(case, base, study, code=code, memory_cap=cap)
        if why == fz.ROOT_SKIP:
            print(f"{label:<6} SKIP            {case.id:<36} {why}", flush=True)
            continue
        rows[case.id] = (ok, seconds)
        note = why if verbose or not ok else ""
        print(f"{label:<6} {'PASS' if ok else 'FAIL'}  {seconds:6.2f} s  {case.id:<36} {note}"[:400], flush=True)
    return rows


def table_at(rev: str, label: str, base: Path, ids: list[str], verbose: bool) -> dict:
    """The table on commit `rev` (unpacked by git archive; the repository is not touched), in a
    child whose cases read that checkout's own pipeline file."""
    code = base / label
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    out = base / f"{label}.json"
    env = {**os.environ, "RADIO_NAS_FUZZ_PIPELINE": str(code / "pipelines" / "distill_cpu.yaml")}
    argv = [sys.executable, __file__, "--code", str(code), "--json-out", str(out), "--label", label, *ids]
    subprocess.run([*argv, *(["--verbose"] if verbose else [])], env=env, check=True)
    return {k: tuple(v) for k, v in json.loads(out.read_text()).items()}


def command_of(case) -> str:
    return " ".join(case.argv[:2]) if case.argv[0] in ("viz", "cache") else case.argv[0]


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
    before = argv[argv.index("--before") + 1] if "--before" in argv else None
    after = argv[argv.index("--after") + 1] if "--after" in argv else None
    valued = ("--before", "--after", "--code", "--json-out", "--label")
    skip = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in valued}
    wanted = [a for a in argv if not a.startswith("--") and a not in skip]
    cases = [c for c in fz.CASES if not wanted or c.id in wanted]
    base = fz.make_base()
    try:
        study = fz.make_study_folder(base, _make_study) if any(c.needs_study for c in cases) else None
        if "--code" in argv:  # the child of --before/--after: this table on that code, to a JSON file
            code, out = Path(argv[argv.index("--code") + 1]), Path(argv[argv.index("--json-out") + 1])
            label = argv[argv.index("--label") + 1]
            out.write_text(json.dumps(run_table(cases, base, study, code, label, verbose, BEFORE_CAP)))
            return 0
        ids = [c.id for c in cases]
        old = table_at(before, "before", base, ids, verbose) if before else {}
        if after:
            rows = table_at(after, "after", base, ids, verbose)
        else:
            rows = run_table(cases, base, study, REPO, "after", verbose, None)
    finally:
        for p in base.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
    import torch

    print(
        f"\nmachine: {platform.node()} {platform.machine()}, python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )
    times = [r[1] for r in rows.values()]
    print(f"answer time per case: median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    by_command: dict[str, list] = {}
    for case in cases:
        if case.id in rows:
            by_command.setdefault(command_of(case), []).append(case.id)
    head = "| command | cases |" + (f" before ({before}) |" if before else "") + f" after ({after or 'working tree'}) |"
    print("\n" + head + "\n|---|---|" + ("---|" if before else "") + "---|")
    every = [i for group in by_command.values() for i in group]
    for command, ids in [*by_command.items(), ("all", every)]:
        cells = [f"{sum(old[i][0] for i in ids if i in old)}"] if before else []
        after = sum(rows[i][0] for i in ids)
        print(f"| {command} | {len(ids)} | " + "".join(c + " | " for c in cells) + f"{after} |")
    skipped = len(cases) - len(rows)
    passed = sum(r[0] for r in rows.values())
    print(
        f"\nfuzz table: {passed}/{len(rows)} cases answered as promised"
        + (f" ({skipped} skipped: {fz.ROOT_SKIP})" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
