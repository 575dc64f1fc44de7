"""Checks of command-line arguments made before a command starts work, each failing with a
:class:`~radio_nas.ConfigError` that names the argument (one line, exit 2).

Argument types (`int_at_least`, `finite_float`) plug into argparse; path and address checks are
called by the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path

from radio_nas._config import ConfigError

ADDRESS_TIMEOUT_S = 5.0
# The largest header a safetensors reader accepts (the reference implementation's limit).
_SAFETENSORS_MAX_HEADER = 100_000_000


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def finite_float(*, positive: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number (> 0 when `positive`)."""
    what = "a finite number > 0" if positive else "a finite number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or (positive and value <= 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def writable_dir(path: str | Path, option: str, *, create: bool = True) -> Path:
    """A folder the command will write into: not a file, creatable, writable. With `create` False
    the folders that had to be made to prove it are removed again (nothing is left behind)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file; expected a folder", key=option)
    made = [p for p in (path, *path.parents) if not p.exists()]
    if made:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror or exc}", key=option) from None
    try:
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{path} is not writable", key=option)
    finally:
        if not create:
            for p in made:  # deepest first
                with contextlib.suppress(OSError):
                    p.rmdir()
    return path


def writable_file(path: str | Path, option: str) -> Path:
    """A file the command will write: not a folder, in a folder that exists or can be made."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; expected a file name", key=option)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{path} is not writable", key=option)
    writable_dir(path.parent if str(path.parent) else Path("."), option)
    return path


def check_storage(url: str, option: str = "--storage", *, create: bool = True) -> None:
    """A storage URL that SQLAlchemy can parse; for SQLite, a database file that can be created
    (or exists as a file) in a writable folder."""
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"not a storage URL ({str(exc).splitlines()[0]}); expected e.g. "
            "sqlite:///results/study.db or postgresql://user@host/db",
            key=option,
        ) from None
    try:
        parsed.get_dialect()
    except Exception as exc:
        raise ConfigError(f"unknown database in {url!r} ({str(exc).splitlines()[0]})", key=option) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db = Path(parsed.database)
        if db.exists() and not db.is_file():
            raise ConfigError(f"{db} is not a file", key=option)
        writable_dir(db.parent, option, create=create)
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            raise ConfigError(f"{db} is not readable and writable", key=option)


def check_address(address: str, option: str = "--address", timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """An existing Ray cluster's address answers: 'auto' (Ray finds the local one) or host:port
    (optionally ray://host:port), probed with one TCP connection so a dead port fails in seconds."""
    if address == "auto":
        return
    m = re.fullmatch(r"(?:ray://)?(\[[^\]]+\]|[^:/\s]+):(\d{1,5})", address)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"expected 'auto' or host:port (e.g. 10.0.0.5:6379), got {address!r}", key=option)
    host, port = m.group(1).strip("[]"), int(m.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        raise ConfigError(f"no Ray cluster at {address}: no answer within {timeout:g} s", key=option) from None
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster at {address}: {exc.strerror or exc}; start one with "
            "'ray start --head' or leave out --address for a local Ray",
            key=option,
        ) from None


def check_image(source: str, option: str) -> None:
    """A picture argument: an existing file, or skimage:<name> naming one of scikit-image's
    bundled pictures (never an arbitrary attribute of the module)."""
    prefix = "skimage:"
    if source.startswith(prefix):
        name = source[len(prefix) :]
        from skimage import data

        if (
            not re.fullmatch(r"[a-z][a-z0-9_]*", name)
            or name not in getattr(data, "__all__", ())
            or name in ("download_all", "data_dir", "file_hash", "lbp_frontal_face_cascade_filename")
        ):
            raise ConfigError(
                f"no bundled scikit-image picture {name!r}; expected e.g. skimage:astronaut, "
                "skimage:chelsea, skimage:coffee or skimage:rocket",
                key=option,
            )
        return
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"no such image file {source!r}", key=option)


def check_safetensors(path: str | Path, option: str = "--weights") -> None:
    """A .safetensors file whose header is sound (length, JSON, tensor entries inside the file),
    checked before the reader sees it."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 1 or n > min(size - 8, _SAFETENSORS_MAX_HEADER):
                raise ConfigError("not a safetensors file (bad header length)", file=path, key=option)
            header = json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError("not a safetensors file (its header is not JSON)", file=path, key=option) from None
    if not isinstance(header, dict):
        raise ConfigError("not a safetensors file (its header is not a mapping)", file=path, key=option)
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            raise ConfigError(f"not a safetensors file (tensor {name!r} lies outside the file)", file=path, key=option)


def check_teacher_files(pipeline: object, source: str | Path | None) -> None:
    """The model files named by ONNX and TorchScript teachers are readable models, checked before a
    trial starts (a garbage file would otherwise fail every trial, deep inside the runtime)."""
    for i, teacher in enumerate(getattr(pipeline, "teachers", ())):
        if teacher.adapter not in ("onnx", "torchscript"):
            continue
        path = Path(teacher.model).expanduser()
        if not path.is_file():
            continue  # a bundled name (opennsfw); the adapter reports a missing file itself
        key = f"teachers[{i}].model"
        try:
            if teacher.adapter == "onnx":
                import onnx

                onnx.load_model(str(path), load_external_data=False)
            else:
                import zipfile

                if not zipfile.is_zipfile(path):
                    raise ValueError("not a TorchScript archive")
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{path} is not a readable {teacher.adapter} model ({reason})", file=source, key=key
            ) from None
