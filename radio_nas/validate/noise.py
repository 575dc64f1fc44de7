"""The measured seed noise of a sweep's trials, for marking Pareto differences that lie within it.

    >>> from radio_nas.validate import noise_threshold
    >>> noise_threshold("results/mra")       # 2x median seed std of fidelity, or None without a validation

A validation matches a sweep when it was made from the same space and pipeline: its
``validation.json`` records the source space hash (which covers the resolved pipeline), and the
sweep's study records its own. ``results/<name>-validate/`` is looked at first, then every other
``*/validation.json`` beside the sweep folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError

RESULT_FILE = "validation.json"


def noise_threshold(results_dir: str | Path, factor: float = 2.0) -> float | None:
    """``factor`` x the median seed std of fidelity at the sweep's trial length, from a matching
    validation; None when there is none (or it has a single seed)."""
    found = find_validation(results_dir)
    if found is None:
        return None
    std = (found.get("noise") or {}).get("sweep_seed_std")
    return None if std is None else factor * float(std)


def find_validation(results_dir: str | Path) -> dict[str, Any] | None:
    """The validation.json made for this sweep's space and pipeline, or None."""
    folder = Path(results_dir)
    wanted = sweep_space_hash(folder)
    if wanted is None:
        return None
    first = folder.parent / f"{folder.name}-validate" / RESULT_FILE
    others = sorted(p for p in folder.parent.glob(f"*/{RESULT_FILE}") if p != first)
    for path in ([first] if first.is_file() else []) + others:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file is no validation
        if isinstance(data, dict) and data.get("source_space_hash") == wanted:
            return data
    return None


def sweep_space_hash(folder: Path) -> str | None:
    """The space hash of a sweep folder: its saved hash file, its study, else its loaded space.yaml."""
    from radio_nas.search.study import HASH_FILE

    saved = folder / HASH_FILE
    if saved.is_file():
        text = saved.read_text().strip()
        if text:
            return text
    db = folder / "study.db"
    if db.is_file():
        try:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = optuna.storages.RDBStorage(f"sqlite:///{db.as_posix()}")
            for summary in optuna.get_all_study_summaries(storage):
                value = summary.user_attrs.get("space_hash")
                if value:
                    return str(value)
        except Exception:  # noqa: BLE001  (not an Optuna database: fall back to the space copy)
            pass
    copy = folder / "space.yaml"
    if copy.is_file():
        from radio_nas.search.space import load_space
        try:
            return load_space(copy).hash
        except ConfigError:
            return None
    return None
