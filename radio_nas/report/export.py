"""Export chosen trials of a sweep: a YAML per variant that rebuilds the model, plus weights and ONNX.

    from radio_nas.study import open_study
    from radio_nas.report.export import export_trials, pareto_numbers
    handle = open_study("results/mra")
    done = export_trials(handle, pareto_numbers(handle), weights=True, onnx=True)
    from radio_nas.models import resolve_config
    resolve_config(done[0].yaml_path).id == done[0].arch_id          # same model
    # True

Each ``<study>-trial<N>.yaml`` holds ``arch:`` (the full architecture config), ``pipeline:`` (as
the trial ran it), ``metrics:`` (objectives and recorded metrics), ``provenance:`` (study, trial,
radio-nas version, results folder, storage) and ``files:`` (weights/ONNX beside it, if exported).
Weights are copied from the trial's safetensors (student and adaptors; keys as the trial wrote
them) after checking that the student part loads strictly into the rebuilt model. ONNX holds the
student backbone (inputs ``images`` (1, 3, H, W) RGB; outputs ``summary``, ``features``) at one
fixed resolution, checked against PyTorch with onnxruntime on a random input.
:func:`export_checkpoint` does the same for an architecture and a checkpoint without a study (the
published E-RADIO v2 weights onto ``l-v2``: ``radio-nas export l-v2 --checkpoint eradio_v2.pth.tar``).
"""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radio_nas import __version__
from radio_nas._config import ConfigError, dump_yaml
from radio_nas._util import atomic_path, atomic_write, parse_resolution, write_path
from radio_nas.constants import IMAGENET_MEAN, IMAGENET_STD
from radio_nas.report.study_table import trials_table
from radio_nas.study.layout import EXPORT_DIR
from radio_nas.study.record import TrialRecord
from radio_nas.study.storage import StudyHandle

ONNX_ATOL = 1e-4
"""Largest |ONNX - PyTorch| accepted on a random input (fp32; seen here: ~1e-7)."""


INPUT_NOTE = {
    "layout": "NCHW",
    "channels": "rgb",
    "value_range": [0, 1],
    "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    "note": "as radio-nas trials feed the student: (x/255 - mean) / std",
}


class OnnxParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance."""


@dataclass
class ExportedVariant:
    trial: int | None  # None: exported from a checkpoint (:func:`export_checkpoint`)
    arch_id: str
    n_params: int
    yaml_path: Path
    weights_path: Path | None = None
    weights_bytes: int | None = None
    onnx_path: Path | None = None
    onnx_resolution: tuple[int, int] | None = None
    onnx_max_abs_diff: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "arch_id": self.arch_id,
            "n_params": self.n_params,
            "yaml": str(self.yaml_path),
            "weights": _str(self.weights_path),
            "weights_bytes": self.weights_bytes,
            "onnx": _str(self.onnx_path),
            "onnx_resolution": list(self.onnx_resolution) if self.onnx_resolution else None,
            "onnx_max_abs_diff": self.onnx_max_abs_diff or None,
        }


def pareto_numbers(handle: StudyHandle) -> list[int]:
    """Trial numbers on the Pareto front of fully trained trials."""
    table = trials_table(handle.study)
    return [int(n) for n in table.loc[table["pareto"], "number"]]


def variant_document(handle: StudyHandle, trial: TrialRecord) -> dict[str, Any]:
    """The exported YAML's content for one trial (see the module docstring)."""
    from radio_nas.models import resolve_config

    if trial.arch is None:
        raise ConfigError(
            f"trial {trial.number} has no recorded architecture to rebuild it from", key=f"trial {trial.number}"
        )
    cfg = resolve_config(dict(trial.arch))
    study = handle.record
    metrics: dict[str, Any] = {}
    if trial.values is not None and trial.is_candidate:
        for obj, value in zip(study.objectives, trial.values):
            metrics[obj.metric] = float(value)
    for key, value in (*trial.costs.items(), ("latency_device", trial.latency_device)):
        if value is not None:
            metrics.setdefault(key, value)
    for key, value in trial.metrics.items():
        metrics.setdefault(key, value)
    provenance = {
        "study": handle.name,
        "trial": trial.number,
        "state": trial.state,
        "status": str(trial.status),
        "arch_id": cfg.id,
        "radio_nas_version": __version__,
        "sweep_radio_nas_version": study.radio_nas_version,
        "space_name": study.space_name,
        "space_hash": study.space_hash,
        "results_dir": str(handle.results_dir) if handle.results_dir else None,
        "storage": handle.storage_url,
        "seed": trial.seed,
        "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if trial.arch_id and trial.arch_id != cfg.id:
        provenance["recorded_arch_id"] = trial.arch_id  # config defaults changed since the sweep
    pipeline = trial.pipeline or study.pipeline
    return {
        "arch": cfg.to_dict(),
        "pipeline": dict(pipeline) if pipeline is not None else None,
        "metrics": metrics,
        "provenance": provenance,
        "input": INPUT_NOTE,
    }


def export_trials(
    handle: StudyHandle,
    numbers: list[int],
    out_dir: str | Path | None = None,
    *,
    weights: bool = False,
    onnx: bool = False,
    onnx_resolution: tuple[int, int] | None = None,
    atol: float = ONNX_ATOL,
    allow_unfinished: bool = False,
) -> list[ExportedVariant]:
    """Export each trial in `numbers`; returns what was written. Raises ConfigError on bad input
    (unknown trial, not fully trained, no weights) before writing anything for that trial."""
    if out_dir is None:
        if handle.results_dir is None:
            raise ConfigError("a bare storage URL has no results folder; pass --out DIR", key="--out")
        out_dir = write_path(handle.results_dir, EXPORT_DIR, key="results folder")
    out_dir = Path(out_dir)
    trials = {t.number: t for t in handle.trials()}
    chosen = []
    for number in numbers:
        if number not in trials:
            held = f"trials 0..{max(trials)}" if trials else "it has no trials"
            raise ConfigError(f"no trial {number} in study {handle.name!r} ({held})", key="--trial")
        trial = trials[number]
        if not allow_unfinished and not trial.is_candidate:
            raise ConfigError(
                f"trial {number} is not fully trained (state {trial.state}, status {trial.status})", key="--trial"
            )
        chosen.append(trial)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_export_one(handle, t, out_dir, weights, onnx, onnx_resolution, atol) for t in chosen]


def _export_one(
    handle: StudyHandle,
    trial: TrialRecord,
    out_dir: Path,
    weights: bool,
    onnx: bool,
    onnx_resolution: tuple[int, int] | None,
    atol: float,
) -> ExportedVariant:
    from radio_nas.models import build_model
    from radio_nas.report.weights import load_weights_into

    doc = variant_document(handle, trial)
    stem = _file_stem(f"{handle.name}-trial{trial.number}")
    model = build_model(doc["arch"]).eval()
    result = ExportedVariant(
        trial.number,
        doc["provenance"]["arch_id"],
        sum(p.numel() for p in model.parameters()),
        write_path(out_dir, f"{stem}.yaml", key="--out"),
    )
    files: dict[str, Any] = {}
    if weights:
        source = trial_weights_path(handle, trial)
        load_weights_into(model, source)  # fails loudly if the file does not fit the architecture
        target = write_path(out_dir, f"{stem}.safetensors", key="--out")
        if source.resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        result.weights_path, result.weights_bytes = target, target.stat().st_size
        files["weights"] = target.name
        files["weights_bytes"] = result.weights_bytes
    if onnx:
        resolution = onnx_resolution or pipeline_resolution(doc.get("pipeline"))
        arch_cfg: Any = model.cfg  # the family's config (ERadioConfig or ViTConfig)
        _check_onnx_size(arch_cfg, resolution, "--onnx-resolution" if onnx_resolution else "pipeline.resolution")
        target = write_path(out_dir, f"{stem}.onnx", key="--out")
        result.onnx_max_abs_diff = export_onnx(model, target, resolution, atol=atol)
        result.onnx_path, result.onnx_resolution = target, resolution
        files["onnx"] = target.name
        files["onnx_resolution"] = list(resolution)
        files["onnx_max_abs_diff"] = result.onnx_max_abs_diff
    if files:
        doc["files"] = files
    atomic_write(result.yaml_path, dump_yaml(doc))
    return result


def export_checkpoint(
    arch: Any,
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    onnx: bool = False,
    onnx_resolution: tuple[int, int] | None = None,
    atol: float = ONNX_ATOL,
) -> ExportedVariant:
    """Export architecture `arch` (preset, YAML, mapping) with the weights of `checkpoint`, no study
    needed: ``<name>.yaml`` (``arch``, ``provenance`` with the checkpoint's path and sha256),
    ``<name>.safetensors`` (the student's state dict in radio-nas names) and optionally ONNX;
    ``<name>`` is the checkpoint's file name up to its first dot.

    `checkpoint` is anything :func:`radio_nas.models.published.student_state_dict` reads: the
    published E-RADIO v2 checkpoint (names mapped onto e.g. ``l-v2``), a student's own state dict,
    or a trial's safetensors. Raises ConfigError (nothing written) when it does not fit `arch`."""
    from safetensors.torch import save_file

    from radio_nas.models import build_model, resolve_config
    from radio_nas.models.published import is_published_layout, read_checkpoint, student_state_dict

    checkpoint = Path(checkpoint)
    cfg: Any = resolve_config(arch)
    raw = read_checkpoint(checkpoint, "--checkpoint")
    layout = "published E-RADIO v2" if is_published_layout(raw) else "radio-nas"
    state = student_state_dict(raw, cfg, "--checkpoint", file=checkpoint)
    del raw
    model = build_model(cfg).eval()
    model.load_state_dict(state, strict=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(checkpoint.name.split(".")[0] or "checkpoint")
    result = ExportedVariant(
        None, cfg.id, sum(p.numel() for p in model.parameters()), write_path(out_dir, f"{stem}.yaml", key="--out")
    )
    result.weights_path = write_path(out_dir, f"{stem}.safetensors", key="--out")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(result.weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"arch": cfg.id, "source": checkpoint.name})
    result.weights_bytes = result.weights_path.stat().st_size
    files: dict[str, Any] = {"weights": result.weights_path.name, "weights_bytes": result.weights_bytes}
    if onnx:
        resolution = onnx_resolution or (224, 224)
        _check_onnx_size(cfg, resolution, "--onnx-resolution")
        result.onnx_path = write_path(out_dir, f"{stem}.onnx", key="--out")
        result.onnx_max_abs_diff = export_onnx(model, result.onnx_path, resolution, atol=atol)
        result.onnx_resolution = resolution
        files.update(
            onnx=result.onnx_path.name, onnx_resolution=list(resolution), onnx_max_abs_diff=result.onnx_max_abs_diff
        )
    doc = {
        "arch": cfg.to_dict(),
        "pipeline": None,
        "metrics": {},
        "provenance": {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": _sha256(checkpoint),
            "checkpoint_layout": layout,
            "arch_id": cfg.id,
            "radio_nas_version": __version__,
            "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        },
        "input": INPUT_NOTE,
        "files": files,
    }
    atomic_write(result.yaml_path, dump_yaml(doc))
    return result


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trial_weights_path(handle: StudyHandle, trial: TrialRecord) -> Path:
    """The trial's safetensors file (``weights_path`` is relative to the results folder)."""
    rel = trial.weights_path
    if not rel:
        raise ConfigError(
            f"trial {trial.number} kept no weights (weights_path is empty); re-run it "
            f"with weights kept, or export without --weights",
            key="--weights",
        )
    path = Path(rel)
    if not path.is_absolute():
        if handle.results_dir is None:
            raise ConfigError(
                "weights paths are relative to the results folder; open the study through its folder", key="--weights"
            )
        path = handle.results_dir / path
    if not path.is_file():
        raise ConfigError(f"trial {trial.number}: weights file is missing", file=path, key="--weights")
    return path


def pipeline_resolution(pipeline: Any, default: int = 224) -> tuple[int, int]:
    """The training resolution recorded in a pipeline dict (``resolution`` at the top or under
    ``data``/``eval``/``train``), as (H, W); `default` when none is recorded or it is unreadable."""
    candidates = []
    if isinstance(pipeline, dict):
        candidates.append(pipeline.get("resolution"))
        for section in ("data", "eval", "train"):
            if isinstance(pipeline.get(section), dict):
                candidates.append(pipeline[section].get("resolution"))
    for value in candidates:
        if value is None:
            continue
        try:
            return parse_resolution(value)
        except ConfigError:
            continue
    return (default, default)


def export_onnx(
    model: torch.nn.Module, path: str | Path, resolution: tuple[int, int], *, atol: float = ONNX_ATOL, seed: int = 0
) -> dict[str, float]:
    """Export `model` (input (1, 3, H, W)) to ONNX and compare with PyTorch under onnxruntime.

    Uses the TorchScript exporter (``dynamo=False``): in torch 2.13 the dynamo exporter fails
    while decomposing SDPA *with an attn_mask* (E-RADIO's position bias): "Cannot view a tensor
    with shape [1, 49, 4, 16] ... as (1, 49, 64)"; without the bias it exports. Returns the max
    |diff| per output; raises :class:`OnnxParityError` (and removes the file) when any exceeds `atol`.
    """
    import warnings

    import onnxruntime as ort

    path = Path(path)
    model = model.eval()
    set_input_size = getattr(model, "set_input_size", None)
    if callable(set_input_size):
        set_input_size(*resolution)  # auto windows, outside the trace
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, *resolution, generator=generator)
    with atomic_path(path) as tmp:  # a file whose parity check fails is removed, never published
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation/tracer chatter
            torch.onnx.export(
                model, (x,), str(tmp), input_names=["images"], output_names=["summary", "features"], dynamo=False
            )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = model(x)
        diffs = {
            name: float(np.abs(got - want.numpy()).max())
            for name, got, want in zip(("summary", "features"), outputs, expected)
        }
        if any(d > atol or not np.isfinite(d) for d in diffs.values()):
            raise OnnxParityError(f"ONNX output differs from PyTorch beyond {atol:g}: {diffs}")
    return diffs


def _check_onnx_size(cfg: Any, resolution: tuple[int, int], key: str) -> None:
    """The ONNX input size fits the model; the error names where the size came from."""
    try:
        cfg.check_input_size(*resolution)
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=key) from None


def _file_stem(name: str) -> str:
    """A file name from a study's name (which someone else may have chosen): no folders, not hidden."""
    return "".join("_" if c in "/\\\0" else c for c in name).lstrip(".") or "study"


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None
