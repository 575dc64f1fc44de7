"""``radio-nas trial``: one distillation trial, standalone.

    radio-nas trial pipelines/distill_cpu.yaml --arch t
    radio-nas trial pipelines/distill_cpu.yaml --arch xt --set steps=40 --set balancing.method=adaloss --json
    radio-nas trial distill_cpu --arch exported/abc.yaml --weights /tmp/student.safetensors

Exit status: 0 when the trial finished, 1 when it failed (the reason is printed), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys

from radio_nas.cli._options import add_set_option


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "trial",
        help="run one distillation trial of a student against a pipeline's teachers",
        description="Train a student for the pipeline's steps against cached teacher outputs, then "
        "evaluate fidelity on held-out crops: per teacher and summary/features the cosine "
        "similarity to the teacher, normalised so 0 is the constant predictor (the mean "
        "teacher output) and 1 is perfect, averaged.",
    )
    p.add_argument("pipeline", help="pipeline YAML (e.g. pipelines/distill_cpu.yaml) or a bundled name")
    p.add_argument("--arch", required=True, help="student: a preset name (xt, t, s, ...) or an arch YAML")
    add_set_option(
        p,
        "override a pipeline key (dotted, e.g. steps=40, balancing.method=adaloss, "
        "teachers.rn50_s16.batch_size=32); repeatable",
        dest="overrides",
    )
    p.add_argument("--weights", metavar="PATH", help="save the trained student + adaptors (safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from radio_nas._config import ConfigError, parse_assignment
    from radio_nas.cli import print_json
    from radio_nas.distill import load_pipeline, run_trial

    overrides = dict(parse_assignment(text) for text in args.overrides)
    pipeline = load_pipeline(args.pipeline, overrides)
    from radio_nas.cli._checks import check_teacher_files

    check_teacher_files(pipeline, args.pipeline)
    from radio_nas.measure.size import check_fits
    from radio_nas.models import resolve_config

    # a student no machine holds is refused with its size, before the teachers or data load
    check_fits(resolve_config(args.arch), pipeline.size, pipeline.batch_size, training=True, what=f"arch {args.arch}")
    if args.weights:
        from radio_nas.cli._checks import writable_file

        writable_file(args.weights, "--weights")

    def report(metrics: dict) -> None:
        if not args.quiet:
            print(
                f"step {metrics['step']:>5}  {metrics['seconds']:7.1f} s  loss {metrics['train_loss']:.4f}  "
                f"fidelity {metrics['fidelity']:.4f}  (cos {metrics['fidelity_cos']:.4f})",
                file=sys.stderr,
            )

    try:
        result = run_trial(pipeline, args.arch, report=report, weights_path=args.weights, progress=not args.quiet)
    except ConfigError as exc:
        if exc.key and exc.key.startswith("teachers."):  # a teacher entry of the pipeline file
            raise exc.within(file=args.pipeline) from None
        raise
    if args.json:
        print_json(result.to_dict())
    else:
        _print(result.to_dict())
    if not result.ok:
        print(f"radio-nas trial: trial failed: {result.failure_reason}", file=sys.stderr)
        return 1
    return 0


def _print(result: dict) -> None:
    def fmt(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    terms = sorted(k.split("/", 1)[1] for k in result if k.startswith("fidelity/"))
    keys = [
        "status",
        "failure_reason",
        "fidelity",
        "fidelity_cos",
        *(f"{p}/{t}" for t in terms for p in ("fidelity", "fidelity_cos", "fidelity_baseline")),
        "feature_smooth_l1",
        *sorted(k for k in result if k.startswith("feature_smooth_l1") and k != "feature_smooth_l1"),
        "knn_accuracy",
        "train_loss_final",
        "train_loss_mean",
        "steps",
        "seconds",
        "steps_per_s",
        "images_per_s",
        "time_teacher_s",
        "time_student_s",
        "time_eval_s",
        "wall_s",
        "cache_hit",
        "weights_path",
    ]
    width = max(map(len, keys))
    for k in keys:
        if k in result and not (k == "failure_reason" and result[k] is None):
            print(f"{k:<{width}}  {fmt(result[k])}")
    curve = "  ".join(f"{p['step']}: {fmt(p['fidelity'])}" for p in result["fidelity_curve"])
    print(f"{'fidelity_curve':<{width}}  {curve}")
