"""``radio-nas export``: Pareto-best (or chosen) trials as YAML that rebuilds the model, with
weights (safetensors) and ONNX.

    radio-nas export results/mra --pareto --weights --onnx
    radio-nas export results/mra --trial 12 --out exported/
    radio-nas export sqlite:///results/mra/study.db --study mra --pareto --out exported/
    radio-nas export l-v2 --checkpoint eradio_v2.pth.tar --onnx --out exported/   # published weights
"""

from __future__ import annotations

import argparse
import sys

from radio_nas._config import ConfigError
from radio_nas.cli._checks import finite_float


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export Pareto-best or chosen trials (YAML config, weights, ONNX)",
        description="Write one YAML per chosen trial (arch, pipeline, metrics, provenance) that "
        "radio_nas.models.build_model() rebuilds; optionally its weights and an ONNX "
        "backbone checked against PyTorch with onnxruntime.",
    )
    p.add_argument(
        "source",
        help="results folder (results/NAME), a study.db file or a storage URL; with --checkpoint: "
        "an architecture (preset such as l-v2, or a YAML file)",
    )
    p.add_argument("--study", help="study name (needed when the storage holds several)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="export the architecture SOURCE with these weights instead of a study's trials: a "
        "weights-only torch checkpoint or safetensors (the published E-RADIO v2 one, e.g. "
        "eradio_v2.pth.tar with l-v2, names mapped; or a student's own); writes YAML and "
        "safetensors (--onnx adds ONNX); default --out: ./exported",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--pareto", action="store_true", help="every trial on the Pareto front")
    which.add_argument("--trial", type=int, action="append", metavar="N", help="trial number (repeatable)")
    p.add_argument("--out", help="output folder (default: <results>/exported)")
    p.add_argument("--weights", action="store_true", help="copy the trial's safetensors beside the YAML")
    p.add_argument("--onnx", action="store_true", help="export the backbone to ONNX and check it")
    p.add_argument(
        "--onnx-resolution", metavar="HxW", help="ONNX input size (default: the pipeline's resolution, else 224)"
    )
    p.add_argument(
        "--atol", type=finite_float(positive=True), default=None, help="ONNX parity tolerance (default 1e-4)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas._util import parse_resolution
    from radio_nas.cli import print_json
    from radio_nas.cli._checks import writable_dir

    if args.out is not None:  # before the heavy imports: a bad --out answers at once
        writable_dir(args.out, "--out")
    if args.checkpoint is not None:
        return _run_checkpoint(args)
    if not args.pareto and not args.trial:
        raise ConfigError(
            "choose trials with --pareto or --trial N (or export a checkpoint with --checkpoint)", key="export"
        )
    from radio_nas.report.export import (
        ONNX_ATOL,
        OnnxParityError,
        export_trials,
        pareto_numbers,
    )
    from radio_nas.study import open_study

    handle = open_study(args.source, args.study)
    if args.out is None and handle.results_dir is not None:
        from radio_nas._util import write_path
        from radio_nas.study.layout import EXPORT_DIR

        writable_dir(write_path(handle.results_dir, EXPORT_DIR, key="results folder"), "results folder")
    numbers = pareto_numbers(handle) if args.pareto else list(dict.fromkeys(args.trial))
    if not numbers:
        # an empty front is an answer, not an error (a study made by hand, a sweep still starting)
        print(f"radio-nas export: note: no fully trained trials in study {handle.name!r}; nothing to export")
        return 0
    try:
        done = export_trials(
            handle,
            numbers,
            args.out,
            weights=args.weights,
            onnx=args.onnx,
            onnx_resolution=(
                parse_resolution(args.onnx_resolution, key="--onnx-resolution")
                if args.onnx_resolution is not None
                else None
            ),
            atol=args.atol if args.atol is not None else ONNX_ATOL,
        )
    except OnnxParityError as exc:
        print(f"radio-nas export: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"study": handle.name, "exported": [d.to_dict() for d in done]})
        return 0
    for d in done:
        extras = []
        if d.weights_path and d.weights_bytes is not None:
            extras.append(f"weights {d.weights_path.name} ({d.weights_bytes / 1e6:.2f} MB)")
        if d.onnx_path and d.onnx_resolution is not None:
            diff = max(d.onnx_max_abs_diff.values())
            extras.append(
                f"onnx {d.onnx_path.name} at {d.onnx_resolution[0]}x{d.onnx_resolution[1]} "
                f"(max |onnx - torch| {diff:.1e})"
            )
        print(
            f"trial {d.trial}: {d.yaml_path}  [{d.arch_id}, {d.n_params / 1e6:.2f} M params]"
            + ("; " + "; ".join(extras) if extras else "")
        )
    return 0


def _run_checkpoint(args: argparse.Namespace) -> int:
    from radio_nas._util import parse_resolution
    from radio_nas.cli import print_json
    from radio_nas.cli._checks import writable_dir

    for flag, given in (("--pareto", args.pareto), ("--trial", args.trial), ("--study", args.study)):
        if given:
            raise ConfigError("chooses trials of a study; --checkpoint exports an architecture with weights", key=flag)
    out = args.out if args.out is not None else "exported"
    writable_dir(out, "--out")
    from radio_nas.report.export import ONNX_ATOL, OnnxParityError, export_checkpoint

    try:
        d = export_checkpoint(
            args.source,
            args.checkpoint,
            out,
            onnx=args.onnx,
            onnx_resolution=(
                parse_resolution(args.onnx_resolution, key="--onnx-resolution") if args.onnx_resolution else None
            ),
            atol=args.atol if args.atol is not None else ONNX_ATOL,
        )
    except OnnxParityError as exc:
        print(f"radio-nas export: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"checkpoint": str(args.checkpoint), "exported": [d.to_dict()]})
        return 0
    line = f"{args.checkpoint}: {d.yaml_path}  [{d.arch_id}, {d.n_params / 1e6:.2f} M params]"
    if d.weights_path is not None and d.weights_bytes is not None:
        line += f"; weights {d.weights_path.name} ({d.weights_bytes / 1e6:.2f} MB)"
    if d.onnx_path is not None and d.onnx_resolution is not None:
        line += (
            f"; onnx {d.onnx_path.name} at {d.onnx_resolution[0]}x{d.onnx_resolution[1]} "
            f"(max |onnx - torch| {max(d.onnx_max_abs_diff.values()):.1e})"
        )
    print(line)
    return 0
