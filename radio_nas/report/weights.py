"""Load a trained student's weights, weights-only (safetensors, or torch.load(weights_only=True)).

    from radio_nas.report.weights import load_student
    model = load_student("exported/mra_trial3.yaml", "exported/mra_trial3.safetensors")

A trial's file may hold the student alone or the student and its adaptors side by side with
key prefixes ``student.`` / ``adaptors.``; :func:`split_state` separates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from radio_nas._config import ConfigError

STUDENT_PREFIXES = ("student.", "model.", "backbone.")
ADAPTOR_PREFIXES = ("adaptors.", "adaptor.", "heads.")


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a weights file, read by :func:`radio_nas.models.published.read_checkpoint`
    (safetensors, or a weights-only torch checkpoint: never unpickling arbitrary objects)."""
    from radio_nas.models.published import read_checkpoint

    state = read_checkpoint(path)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(student tensors without prefix, adaptor tensors with their prefix)."""
    student, adaptors = {}, {}
    prefixed = any(k.startswith(STUDENT_PREFIXES) for k in state)
    for key, value in state.items():
        if key.startswith(ADAPTOR_PREFIXES):
            adaptors[key] = value
        elif prefixed:
            for prefix in STUDENT_PREFIXES:
                if key.startswith(prefix):
                    student[key[len(prefix) :]] = value
                    break
            else:
                adaptors[key] = value  # anything else beside a prefixed student (balancers, ...)
        else:
            student[key] = value
    return student, adaptors


def load_weights_into(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """Load the student part of `path` into `model` (strict); returns the other tensors."""
    student, rest = split_state(read_state(path))
    try:
        model.load_state_dict(student, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"weights do not fit this architecture: {str(exc).splitlines()[0]} {_first_mismatch(model, student)}",
            file=path,
            key="--weights",
        ) from None
    return rest


def load_student(spec: Any, weights: str | Path | None = None) -> nn.Module:
    """Build the student of `spec` (preset, YAML, mapping, config) in eval mode, with weights."""
    from radio_nas.models import build_model

    model = build_model(spec)
    if weights is not None:
        load_weights_into(model, weights)
    return model.eval()


def _first_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        return f"(missing e.g. {missing[0]!r})"
    if unexpected:
        return f"(unexpected e.g. {unexpected[0]!r})"
    return ""
