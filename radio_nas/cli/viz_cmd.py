"""``radio-nas viz pca``: PCA picture of a student's spatial features beside its teachers' (seed §B).

    radio-nas viz pca t --image photo.jpg --resolution 256x384
    radio-nas viz pca exported/mra-trial3.yaml --image skimage:chelsea --pipeline distill_cpu
    radio-nas viz pca exported/mra-trial3.yaml --weights exported/mra-trial3.safetensors --image a.jpg
"""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("viz", help="pictures of a variant's features (PCA to RGB)",
                              description="Visualise a variant's features.")
    kinds = p.add_subparsers(dest="viz_kind", metavar="<kind>", required=True)
    pca = kinds.add_parser(
        "pca", help="top-3 principal components of the spatial features as RGB (seed §B)",
        description="PCA of the student's stride-16 features to 3 components mapped to RGB, at any "
                    "resolution and aspect ratio, beside the same picture for each teacher of a "
                    "pipeline.")
    pca.add_argument("arch", help="preset name, architecture YAML or exported variant YAML")
    pca.add_argument("--image", default="skimage:astronaut",
                     help="picture file, or skimage:<name> for a bundled one (default skimage:astronaut)")
    pca.add_argument("--weights", help="student weights (.safetensors, or a weights-only torch file); "
                                       "default: the 'weights' file named in an exported YAML, else random init")
    pca.add_argument("--resolution", metavar="HxW",
                     help="student input size, multiples of 32 (default: the picture's aspect ratio, "
                          "short side 224)")
    pca.add_argument("--pipeline", help="pipeline (YAML or bundled name) whose teachers are shown too; "
                                        "default: the pipeline recorded in an exported YAML, if any")
    pca.add_argument("--no-teachers", action="store_true", help="student only")
    pca.add_argument("--out", help="PNG to write (default pca_<arch>.png)")
    pca.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from radio_nas._config import load_yaml
    from radio_nas.cli import print_json
    from radio_nas.models import resolve_config
    from radio_nas._util import parse_resolution
    from radio_nas.report.pca import (StudentFeatures, default_resolution, feature_pictures,
                                      load_image, resized, save_panel)
    from radio_nas.report.weights import load_student

    cfg = resolve_config(args.arch)
    exported: dict = {}
    if Path(args.arch).suffix in (".yaml", ".yml"):
        exported = load_yaml(args.arch)
    weights = args.weights
    if weights is None and isinstance(exported.get("files"), dict) and exported["files"].get("weights"):
        weights = str(Path(args.arch).parent / exported["files"]["weights"])
    image = load_image(args.image)
    resolution = (parse_resolution(args.resolution, key="--resolution") if args.resolution is not None
                  else default_resolution(*image.shape[:2]))
    cfg.check_input_size(*resolution)
    models = {"student": StudentFeatures(load_student(cfg, weights))}
    pipeline = args.pipeline if args.pipeline is not None else exported.get("pipeline")
    teachers = []
    if pipeline and not args.no_teachers:
        from radio_nas.distill import build_teachers, load_pipeline

        teachers = build_teachers(load_pipeline(pipeline))
        models.update({f"teacher {t.name}": t for t in teachers})
    pictures = feature_pictures(models, image, resolution)
    name = Path(args.arch).stem if Path(args.arch).suffix else str(args.arch)
    out = Path(args.out or f"pca_{name}.png")
    save_panel(resized(image, resolution), pictures, out, title=f"{name} at {resolution[0]}x{resolution[1]}"
               + ("" if weights else " (random init)"))
    info = {"out": str(out), "resolution": list(resolution), "weights": weights, "arch_id": cfg.id,
            "pictures": {k: list(v.shape) for k, v in pictures.items()}}
    if args.json:
        print_json(info)
    else:
        grids = ", ".join(f"{k} {v.shape[0]}x{v.shape[1]}" for k, v in pictures.items())
        print(f"wrote {out} ({grids})" + ("" if weights else "; student has random weights (no --weights)"))
    return 0
