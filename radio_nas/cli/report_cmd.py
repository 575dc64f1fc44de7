"""``radio-nas report``: Pareto front, hypervolume, tables and plots of a sweep.

radio-nas report results/mra
radio-nas report results/mra --reference radio_nas/report/reference_rows.yaml --json
radio-nas report sqlite:///results/mra/study.db --study mra-1a2b3c4d --out /tmp/mra-report
"""

from __future__ import annotations

import argparse
import sys

from radio_nas.cli._checks import int_at_least


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="Pareto front, hypervolume, tables, plots and PCA pictures of a sweep",
        description="Load a sweep's Optuna study and write report.md, trials.csv, pareto.csv and PNG "
        "plots into its results folder; PCA pictures of the Pareto variants are attached "
        "to their trials as Optuna artifacts (optuna-dashboard --artifact-dir "
        "results/NAME/artifacts sqlite:///results/NAME/study.db).",
    )
    p.add_argument("source", help="results folder (results/NAME), a study.db file or a storage URL")
    p.add_argument("--study", help="study name (needed when the storage holds several)")
    p.add_argument("--out", help="where to write (default: the results folder)")
    p.add_argument(
        "--reference",
        nargs="?",
        const="bundled",
        metavar="YAML",
        help="published rows to show side by side (no value: the bundled radio_nas/report/reference_rows.yaml)",
    )
    p.add_argument("--no-pca", action="store_true", help="skip the PCA pictures of the Pareto variants")
    p.add_argument(
        "--pca-image",
        default="skimage:astronaut",
        help="picture for the PCA panels: a file or skimage:<name> (default skimage:astronaut)",
    )
    p.add_argument("--max-pca", type=int_at_least(0), default=8, help="PCA pictures for at most this many variants")
    p.add_argument(
        "--trust-teachers",
        action="store_true",
        help="build the study's pipeline teachers for the PCA pictures even when they load code "
        "(torch.hub hubconf.py, remote code, TorchScript); only for studies you trust (default: "
        "such pictures are skipped with a note)",
    )
    p.add_argument("--json", action="store_true", help="print the Pareto set as one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas.cli import print_json
    from radio_nas.cli._checks import check_image, writable_dir

    if not args.no_pca:
        check_image(args.pca_image, "--pca-image")
    if args.out:
        writable_dir(args.out, "--out")
    if args.reference not in (None, "bundled"):
        from radio_nas._config import load_yaml

        load_yaml(args.reference, key="--reference")  # a bad file fails before the report is built
    from radio_nas.report.reference import BUNDLED_REFERENCE
    from radio_nas.report.report import build_report
    from radio_nas.study import open_study

    handle = open_study(args.source, args.study)
    out = args.out or handle.results_dir
    if out is not None:
        writable_dir(out, "--out" if args.out else "results folder")
    reference = BUNDLED_REFERENCE if args.reference == "bundled" else args.reference
    rep = build_report(
        handle,
        args.out,
        reference=reference,
        pca=not args.no_pca,
        pca_image=args.pca_image,
        max_pca=args.max_pca,
        trust_teachers=args.trust_teachers,
    )
    if rep.pca_note:
        print(f"radio-nas report: note: {rep.pca_note}", file=sys.stderr)
    if args.json:
        print_json(rep.pareto_json())
        return 0
    front = rep.pareto
    objectives = [o.metric for o in rep.objectives]
    print(
        f"study {handle.name}: {len(rep.table)} trials, {int(rep.table['candidate'].sum())} fully "
        f"trained, {len(front)} on the Pareto front; hypervolume {rep.hypervolume.value:.4f}"
    )
    if not front.empty:
        cols = ["number", "arch_id", *objectives, "n_params"]
        print(front[[c for c in dict.fromkeys(cols) if c in front]].to_string(index=False))
    for e in rep.pca:
        if e.path is None:
            print(f"PCA trial {e.trial}: {e.note}")
    print(
        f"wrote {rep.files['report.md']} (+ {len(rep.files) - 1} files"
        + (f", {sum(e.path is not None for e in rep.pca)} PCA pictures" if rep.pca else "")
        + ")"
    )
    return 0
