"""Hugging Face checkpoints read without the image-processor classes: in transformers 5 those want
torchvision (which would replace the CPU torch), so the saved ``preprocessor_config.json`` is read
as JSON and turned into a teacher's ``resolution``, ``mean`` and ``std``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radio_nas._config import ConfigError, read_text

PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
"""Where transformers saves image preprocessing (the second nests it under ``image_processor``)."""


def local_dir(model: str) -> Path | None:
    """The checkpoint folder `model` names, or None for a hub id (``org/name``). Something that can
    only be a path (absolute, ``./``, ``~``, deeper than ``org/name``) must be a folder."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
        what = "a file; expected the folder save_pretrained wrote" if path.exists() else "no such folder"
        raise ConfigError(f"{what}: {model}", key="model")
    return None


def preprocessing(model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``resolution`` / ``mean`` / ``std`` from the checkpoint's saved image-processor config
    (only those it states; {} when it has none). A hub id is looked up in the local HF cache
    first, then downloaded (as the weights will be)."""
    proc = _processor_config(model, kwargs)
    if proc is None:
        return {}
    out: dict[str, Any] = {}
    size = _size(proc.get("crop_size")) if proc.get("do_center_crop") else None
    size = size or _size(proc.get("size"))
    if size is not None:
        out["resolution"] = size
    if proc.get("do_normalize", True) is False:
        out["mean"], out["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        for ours, theirs in (("mean", "image_mean"), ("std", "image_std")):
            value = proc.get(theirs)
            if isinstance(value, (int, float)):
                value = [value] * 3
            if isinstance(value, list) and len(value) == 3:
                out[ours] = tuple(float(v) for v in value)
    return out


def _size(value: Any) -> tuple[int, int] | None:
    """An HF size entry (int, {height, width}, {shortest_edge}, {longest_edge}) as (H, W).

    Teachers see one square-ish crop box resized to their resolution, so a shortest- or
    longest-edge rule (DINOv2's resize before its centre crop, SAM's 1024 longest edge) is taken
    as that square."""
    if isinstance(value, int):
        return (value, value)
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("height"), int) and isinstance(value.get("width"), int):
        return (value["height"], value["width"])
    for edge in ("shortest_edge", "longest_edge"):
        if isinstance(value.get(edge), int):
            return (value[edge], value[edge])
    return None


def _processor_config(model: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    folder = local_dir(model)
    for name in PROCESSOR_FILES:
        path = folder / name if folder is not None else _hub_file(model, name, kwargs)
        if path is None or not path.is_file():
            continue
        try:
            data = json.loads(read_text(path, key="model"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})", key="model") from None
        if isinstance(data, dict) and isinstance(data.get("image_processor"), dict):
            data = data["image_processor"]
        if isinstance(data, dict):
            return data
    return None


def _hub_file(repo: str, name: str, kwargs: dict[str, Any]) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:  # the hf adapter then fails at build time, naming the extra to install
        return None
    revision, cache_dir = kwargs.get("revision"), kwargs.get("cache_dir")
    cached = try_to_load_from_cache(repo, name, cache_dir=cache_dir, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    if cached is not None:  # the cache knows the repo has no such file
        return None
    try:
        return Path(hf_hub_download(repo, name, revision=revision, cache_dir=cache_dir))
    except LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE) or unreachable: a subclass, so first
        raise ConfigError(
            f"cannot read {name} of {repo!r} (offline and not in the HF cache); "
            "point model at a saved folder, or set resolution, mean and std",
            key="model",
        ) from None
    except EntryNotFoundError:
        return None
    except Exception as exc:  # unknown repo, no access, bad revision
        raise ConfigError(f"cannot read {name} of {repo!r}: {type(exc).__name__}: {exc}", key="model") from None
