"""The measured seed noise of a sweep's trials, for marking Pareto differences that lie within it.

    from radio_nas.study.noise import noise_threshold, find_validation
    noise_threshold("results/mra")       # 2x median seed std of fidelity, or None without a validation
    find_validation("results/mra")["match"]          # "space" or "pipeline"

``radio-nas validate`` writes ``validation.json``; the report reads it through this module (both
sit above it). A validation matches a sweep when it was made for the same space and pipeline.
Exact match: its ``validation.json`` records the source space hash (which covers the resolved
pipeline) and the sweep folder records its own. Since a space hash also changes when radio-nas
gains a config field, a validation also matches when it has the same space name and its resolved
pipeline agrees with the sweep's on every key both have. Exact matches come first;
``results/<name>-validate/`` is looked at before other ``*/validation.json`` folders beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError
from radio_nas.study.layout import HASH_FILE, STUDY_FILE, VALIDATE_SUFFIX, VALIDATION_FILE


def noise_threshold(results_dir: str | Path, factor: float = 2.0) -> float | None:
    """``factor`` x the median seed std of fidelity at the sweep's trial length, from a matching
    validation; None when there is none (validations with a single seed carry no noise)."""
    for found in _matches(Path(results_dir)):
        std = (found.get("noise") or {}).get("sweep_seed_std")
        if std is not None:
            return factor * float(std)
    return None


def find_validation(results_dir: str | Path) -> dict[str, Any] | None:
    """The best validation.json for this sweep's space and pipeline (with ``match`` added), or None."""
    return next(_matches(Path(results_dir)), None)


def _matches(folder: Path) -> Iterator[dict[str, Any]]:
    info = sweep_identity(folder)
    if info is None:
        return
    first = folder.parent / f"{folder.name}{VALIDATE_SUFFIX}" / VALIDATION_FILE
    others = sorted(p for p in folder.parent.glob(f"*/{VALIDATION_FILE}") if p != first)
    loaded = []
    for path in ([first] if first.is_file() else []) + others:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file is no validation
        if isinstance(data, dict):
            loaded.append((path, data))
    for path, data in loaded:
        if info["hash"] is not None and data.get("source_space_hash") == info["hash"]:
            yield {**data, "match": "space", "path": str(path)}
    for path, data in loaded:
        if (
            data.get("source_space_hash") != info["hash"]
            and info["pipeline"] is not None
            and data.get("source_space") == info["name"]
            and _agree(data.get("pipeline"), info["pipeline"])
        ):
            yield {**data, "match": "pipeline", "path": str(path)}


def _agree(a: Any, b: Any) -> bool:
    """Equal on every key both mappings have (recursively); lists compared item by item."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_agree(a[k], b[k]) for k in a.keys() & b.keys())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_agree(x, y) for x, y in zip(a, b))
    return bool(a == b)


def sweep_identity(folder: Path) -> dict[str, Any] | None:
    """Space hash, space name and resolved pipeline of a sweep folder (from its study, read-only)."""
    from radio_nas.study.record import StudyRecord
    from radio_nas.study.storage import open_study

    info: dict[str, Any] = {"hash": None, "name": None, "pipeline": None}
    saved = folder / HASH_FILE
    if saved.is_file():
        info["hash"] = saved.read_text().strip() or None
    if (folder / STUDY_FILE).is_file():
        try:
            handle = open_study(folder)
        except ConfigError:
            handle = None  # not a single-study Optuna database: the hash file alone decides
        if handle is not None:
            rec = StudyRecord.from_study(handle.study)
            info["hash"] = info["hash"] or rec.space_hash
            info["name"] = rec.space_name
            info["pipeline"] = dict(rec.pipeline) if rec.pipeline is not None else None
    return info if info["hash"] is not None or info["pipeline"] is not None else None


def sweep_space_hash(folder: Path) -> str | None:
    """The space hash a sweep folder was made by, or None."""
    info = sweep_identity(folder)
    return None if info is None else info["hash"]
