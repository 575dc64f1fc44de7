"""``radio-nas viz pca``: PCA picture of a student's spatial features beside its teachers' (AM-RADIO supplementary §B).

    radio-nas viz pca t --image photo.jpg --resolution 256x384
    radio-nas viz pca exported/mra-trial3.yaml --image skimage:chelsea --pipeline distill_cpu
    radio-nas viz pca exported/mra-trial3.yaml --weights exported/mra-trial3.safetensors --image a.jpg

Teachers recorded in an exported YAML are built only when they run no code of their own (ONNX);
a torch.hub, Hugging Face, TorchScript, timm or open_clip teacher named there needs
``--trust-teachers`` (that file may come from someone else), or ``--pipeline`` naming your own.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "viz", help="pictures of a variant's features (PCA to RGB)", description="Visualise a variant's features."
    )
    kinds = p.add_subparsers(dest="viz_kind", metavar="<kind>", required=True)
    pca = kinds.add_parser(
        "pca",
        help="top-3 principal components of the spatial features as RGB (AM-RADIO supplementary §B)",
        description="PCA of the student's stride-16 features to 3 components mapped to RGB, at any "
        "resolution and aspect ratio, beside the same picture for each teacher of a "
        "pipeline.",
    )
    pca.add_argument("arch", help="preset name, architecture YAML or exported variant YAML")
    pca.add_argument(
        "--image",
        default="skimage:astronaut",
        help="picture file, or skimage:<name> for a bundled one (default skimage:astronaut)",
    )
    pca.add_argument(
        "--weights",
        help="student weights (.safetensors, or a weights-only torch file); "
        "default: the 'weights' file named in an exported YAML, else random init",
    )
    pca.add_argument(
        "--resolution",
        metavar="HxW",
        help="student input size, multiples of 32 (default: the picture's aspect ratio, short side 224)",
    )
    pca.add_argument(
        "--pipeline",
        help="pipeline (YAML or bundled name) whose teachers are shown too; "
        "default: the pipeline recorded in an exported YAML, if any",
    )
    pca.add_argument("--no-teachers", action="store_true", help="student only")
    pca.add_argument(
        "--trust-teachers",
        action="store_true",
        help="build the teachers recorded in an exported YAML even when they load code "
        "(torch.hub hubconf.py, remote code, TorchScript); only for files you trust",
    )
    pca.add_argument("--out", help="PNG to write (default pca_<arch>.png)")
    pca.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from radio_nas._config import load_yaml
    from radio_nas._util import parse_resolution
    from radio_nas.cli import print_json
    from radio_nas.cli._checks import check_image, check_safetensors, writable_file
    from radio_nas.models import resolve_config
    from radio_nas.report.pca import (
        StudentFeatures,
        default_resolution,
        feature_pictures,
        load_image,
        resized,
        save_panel,
    )
    from radio_nas.report.weights import load_student

    check_image(args.image, "--image")
    cfg = resolve_config(args.arch)
    exported: dict = {}
    if Path(args.arch).suffix in (".yaml", ".yml"):
        exported = load_yaml(args.arch)
    weights = args.weights
    if weights is None and isinstance(exported.get("files"), dict) and exported["files"].get("weights"):
        weights = str(Path(args.arch).parent / exported["files"]["weights"])
    if weights is not None:
        check_safetensors(weights, "--weights" if args.weights else f"{args.arch}: files.weights")
    name = Path(args.arch).stem if Path(args.arch).suffix else str(args.arch)
    out = writable_file(args.out or f"pca_{name}.png", "--out")
    pipeline = args.pipeline if args.pipeline is not None else exported.get("pipeline")
    loaded = None
    if pipeline and not args.no_teachers:
        from radio_nas.distill import load_pipeline

        loaded = load_pipeline(pipeline)
        if args.pipeline is None and not args.trust_teachers:
            _refuse_code_teachers(loaded, args.arch)
    image = load_image(args.image)
    resolution = (
        parse_resolution(args.resolution, key="--resolution")
        if args.resolution is not None
        else default_resolution(*image.shape[:2])
    )
    cfg_any: Any = cfg  # the family's config (ERadioConfig or ViTConfig)
    cfg_any.check_input_size(*resolution)
    from radio_nas.measure.size import check_fits

    check_fits(cfg, resolution, what=f"arch {args.arch}")  # before the student is built
    models: dict[str, Any] = {"student": StudentFeatures(load_student(cfg, weights))}
    if loaded is not None:
        from radio_nas.distill import build_teachers

        models.update({f"teacher {t.name}": t for t in build_teachers(loaded)})
    pictures = feature_pictures(models, image, resolution)
    save_panel(
        resized(image, resolution),
        pictures,
        out,
        title=f"{name} at {resolution[0]}x{resolution[1]}" + ("" if weights else " (random init)"),
    )
    info = {
        "out": str(out),
        "resolution": list(resolution),
        "weights": weights,
        "arch_id": cfg.id,
        "pictures": {k: list(v.shape) for k, v in pictures.items()},
    }
    if args.json:
        print_json(info)
    else:
        grids = ", ".join(f"{k} {v.shape[0]}x{v.shape[1]}" for k, v in pictures.items())
        print(f"wrote {out} ({grids})" + ("" if weights else "; student has random weights (no --weights)"))
    return 0


def _refuse_code_teachers(pipeline: Any, source: str) -> None:
    """Teachers taken from a file the user did not name as a pipeline may not load code."""
    from radio_nas._config import ConfigError
    from radio_nas.distill.teachers import code_loading_teachers

    for i, t in code_loading_teachers(pipeline):
        raise ConfigError(
            f"teacher {t.name!r} ({t.adapter}:{t.model}) would load and run code named by this "
            "file; pass --trust-teachers if you trust it, --pipeline YOUR.yaml, or "
            "--no-teachers",
            file=source,
            key=f"pipeline.teachers[{i}]",
        )
