"""Content-keyed cache of teacher outputs for a trial's crop stream.

    from radio_nas.distill.cache import teacher_outputs, list_entries, clear
    entries, built = teacher_outputs(pipeline.teachers, dataset, "train", root=pipeline.cache_dir(),
                                     get_teachers=lambda: {t.name: t for t in build_teachers(pipeline)})
    entries["rn50_s16"].summary[:8]          # fp16 np.memmap (N, Ds); .features is (N, Df, h, w)

One entry per (teacher, data, crops, split): a folder ``<root>/<key>/`` with ``summary.npy``,
``features.npy`` (fp16, opened memory-mapped), ``meta.json`` and the marker file
``.radio-nas-cache`` (only folders holding it are ever listed as entries or removed by
:func:`clear`). The key hashes everything that changes the outputs: the teacher's preprocessing,
outputs and weights (file sha256), the image source and the crop stream settings. An entry is
built in a temporary folder and renamed into place (atomic); a ``fcntl`` lock per key makes a
second process racing for the same entry wait and then read it. A warm call never builds (or even
loads) a teacher.

Every entry is verified before use (readable metadata whose key is the folder's, arrays whose
dtype and shapes match it); a broken one (a truncated array, damaged metadata) is rebuilt in
place under the key's lock, and :func:`list_entries` shows it with its problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radio_nas._config import ConfigError, stable_id
from radio_nas.distill.data import CropDataset
from radio_nas.distill.pipeline import TeacherConfig

CACHE_VERSION = 1
MARKER = ".radio-nas-cache"
"""Written into every entry this module builds: what :func:`clear` may remove."""
_KEY_RE = re.compile(r"[0-9a-f]{20}")
_TMP_RE = re.compile(r"\.(?:tmp|broken)-([0-9a-f]{20})-(\d+)-[0-9a-f]{8}")
_ENTRY_FILES = {"meta.json", "summary.npy", "features.npy", "stats-v1.npz", MARKER}
_FP16_MAX = float(np.finfo(np.float16).max)
# Fields that do not change a teacher's outputs, so they stay out of the key.
_NOT_IN_KEY = ("name", "weight_summary", "weight_features", "batch_size", "device")


@dataclass
class CacheEntry:
    key: str
    path: Path | None
    """None for an in-memory entry (cache disabled)."""
    meta: dict[str, Any]
    summary: np.ndarray
    features: np.ndarray


def cache_key(teacher: TeacherConfig, dataset: CropDataset, split: str) -> str:
    """The content key of one teacher's outputs on one split of a crop stream."""
    from radio_nas.distill.teachers import teacher_fingerprint

    tcfg = {k: v for k, v in teacher.to_dict().items() if k not in _NOT_IN_KEY}
    dcfg = dataset.cfg.to_dict()
    return stable_id(
        {
            "v": CACHE_VERSION,
            "teacher": tcfg,
            "weights": teacher_fingerprint(teacher),
            "data": dcfg,
            "images": dataset.fingerprint,
            "split": split,
            "n": dataset.size(split),
        },
        length=20,
    )


def teacher_outputs(
    teachers: Sequence[TeacherConfig],
    dataset: CropDataset,
    split: str,
    *,
    root: Path,
    get_teachers: Callable[[], dict[str, Any]],
    enabled: bool = True,
    progress: bool = True,
) -> tuple[dict[str, CacheEntry], bool]:
    """Entries for every teacher on `split`, built where missing. Returns (entries, built_any).

    `get_teachers` is called only when something must be computed; teachers whose entries are
    missing are run together on each batch (ONNX heads on one file then share one forward).
    """
    keys = {t.name: cache_key(t, dataset, split) for t in teachers}
    # Teachers with identical outputs (same key under another name) are computed once.
    first: dict[str, TeacherConfig] = {}
    for t in teachers:
        first.setdefault(keys[t.name], t)
    if len(first) < len(teachers):
        unique, built = teacher_outputs(
            list(first.values()),
            dataset,
            split,
            root=root,
            get_teachers=get_teachers,
            enabled=enabled,
            progress=progress,
        )
        return {t.name: unique[first[keys[t.name]].name] for t in teachers}, built
    if not enabled:
        return _compute(teachers, keys, dataset, split, get_teachers(), None, progress), True
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    entries = {t.name: e for t in teachers if (e := _open(root, keys[t.name])) is not None}
    missing = [t for t in teachers if t.name not in entries]
    if not missing:
        return entries, False
    with _locks(root, sorted({keys[t.name] for t in missing})):
        # Someone may have finished these while we waited for the locks.
        entries.update({t.name: e for t in missing if (e := _open(root, keys[t.name])) is not None})
        missing = [t for t in missing if t.name not in entries]
        if missing:
            entries.update(_compute(missing, keys, dataset, split, get_teachers(), root, progress))
    return entries, bool(missing)


def _compute(
    teachers: Sequence[TeacherConfig],
    keys: dict[str, str],
    dataset: CropDataset,
    split: str,
    models: dict[str, Any],
    root: Path | None,
    progress: bool,
) -> dict[str, CacheEntry]:
    from tqdm import tqdm

    n = dataset.size(split)
    tmp = {
        t.name: (root / f".tmp-{keys[t.name]}-{os.getpid()}-{uuid.uuid4().hex[:8]}") if root else None for t in teachers
    }
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    batch = min(t.batch_size for t in teachers)
    try:
        with tqdm(
            total=n * len(teachers),
            desc=f"teacher outputs ({split})",
            unit="img",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ) as bar:
            for start in range(0, n, batch):
                idx = range(start, min(start + batch, n))
                crops: dict[tuple[int, int], np.ndarray] = {}
                for t in teachers:
                    if t.size not in crops:
                        crops[t.size] = dataset.crops(split, idx, t.size)
                    summary, features = models[t.name](crops[t.size])
                    s, f = summary.numpy(), features.numpy()
                    if not (np.isfinite(s).all() and np.isfinite(f).all()):
                        raise ValueError(f"teacher {t.name} gave non-finite outputs on {split} crops {idx}")
                    if t.name not in arrays:
                        arrays[t.name] = _allocate(tmp[t.name], n, s.shape[1:], f.shape[1:])
                    arrays[t.name][0][idx.start : idx.stop] = np.clip(s, -_FP16_MAX, _FP16_MAX)
                    arrays[t.name][1][idx.start : idx.stop] = np.clip(f, -_FP16_MAX, _FP16_MAX)
                    bar.update(len(idx))
        out = {}
        for t in teachers:
            s, f = arrays[t.name]
            meta = {
                "key": keys[t.name],
                "teacher": t.name,
                "adapter": t.adapter,
                "model": t.model,
                "summary_output": t.summary.output,
                "features_output": t.features.output,
                "resolution": list(t.size),
                "split": split,
                "n": n,
                "data": dataset.fingerprint,
                "summary_shape": list(s.shape),
                "features_shape": list(f.shape),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "version": CACHE_VERSION,
            }
            if root is None:
                out[t.name] = CacheEntry(keys[t.name], None, meta, s, f)
                continue
            for arr in (s, f):
                arr.flush()  # type: ignore[attr-defined]  # an np.memmap
            del arrays[t.name]
            folder = tmp[t.name]
            assert folder is not None
            (folder / "meta.json").write_text(json.dumps(meta, indent=1))
            (folder / MARKER).write_text(f"radio-nas teacher cache entry {keys[t.name]}\n")
            final = root / keys[t.name]
            _replace_entry(folder, final)
            entry = _open(root, keys[t.name])
            if entry is None:
                raise RuntimeError(
                    f"teacher cache entry {final} is unreadable right after it was written: {verify_entry(final)}"
                )
            out[t.name] = entry
        return out
    finally:
        for path in tmp.values():
            if path is not None and path.exists():
                shutil.rmtree(path, ignore_errors=True)


def _allocate(
    folder: Path | None, n: int, s_shape: tuple[int, ...], f_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    if folder is None:
        return np.zeros((n, *s_shape), np.float16), np.zeros((n, *f_shape), np.float16)
    folder.mkdir(parents=True)
    open_mm = np.lib.format.open_memmap
    return (
        open_mm(folder / "summary.npy", mode="w+", dtype=np.float16, shape=(n, *s_shape)),
        open_mm(folder / "features.npy", mode="w+", dtype=np.float16, shape=(n, *f_shape)),
    )


def _replace_entry(tmp: Path, final: Path) -> None:
    """Rename a finished build into place. A broken entry already there (we hold its lock) is
    first renamed aside, since a rename cannot replace a non-empty folder, then removed."""
    aside = None
    if final.exists() or final.is_symlink():
        aside = final.with_name(f".broken-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.replace(final, aside)
    os.replace(tmp, final)  # atomic: a reader sees a whole entry or none
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


def _open(root: Path, key: str) -> CacheEntry | None:
    """The entry if it is whole and consistent, else None (the caller rebuilds it)."""
    entry, _ = _load(root / key)
    return entry


def _load(folder: Path) -> tuple[CacheEntry | None, str | None]:
    """(entry, None) for a sound entry; (None, problem) otherwise."""
    if not folder.is_dir():
        return None, "missing"
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        return None, f"metadata unreadable ({type(exc).__name__})"
    if not isinstance(meta, dict):
        return None, "metadata is not a mapping"
    if meta.get("key") != folder.name:
        return None, f"metadata key {meta.get('key')!r} is not the folder's"
    arrays = {}
    for name in ("summary", "features"):
        try:
            arr = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            return None, f"{name}.npy unreadable ({str(exc).splitlines()[0][:80]})"
        shape = meta.get(f"{name}_shape")
        if arr.dtype != np.float16:
            return None, f"{name}.npy is {arr.dtype}, expected float16"
        if not isinstance(shape, list) or list(arr.shape) != shape:
            return None, f"{name}.npy has shape {list(arr.shape)}, metadata says {shape}"
        if arr.shape[0] != meta.get("n"):
            return None, f"{name}.npy has {arr.shape[0]} rows, metadata says n={meta.get('n')}"
        arrays[name] = arr
    return CacheEntry(folder.name, folder, meta, arrays["summary"], arrays["features"]), None


def verify_entry(folder: Path) -> str | None:
    """None when the entry at `folder` is sound, else what is wrong with it."""
    return _load(Path(folder))[1]


def _is_ours(folder: Path) -> bool:
    """A folder this cache made: it holds the marker, or (entries written before the marker
    existed) it is named by a key and holds nothing but an entry's files."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    if (folder / MARKER).is_file():
        return True
    if not _KEY_RE.fullmatch(folder.name):
        return False
    names = {p.name for p in folder.iterdir()}
    return "meta.json" in names and names <= _ENTRY_FILES


@contextlib.contextmanager
def _locks(root: Path, keys: list[str]) -> Iterator[None]:
    """Exclusive fcntl locks on every key, taken in sorted order (no deadlock between racers)."""
    handles = []
    try:
        for key in keys:
            fh = open(root / f".{key}.lock", "a+")
            fcntl.flock(fh, fcntl.LOCK_EX)
            handles.append(fh)
        yield
    finally:
        for fh in reversed(handles):
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


def list_entries(root: Path, *, broken: bool = False) -> list[dict[str, Any]]:
    """Entries under `root`: the meta of each plus ``bytes``, ``path`` and ``status`` (``ok``; with
    `broken`, also ``broken`` entries with their ``problem``, to be rebuilt or cleared)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if not p.name.startswith(".") and _is_ours(p)):
        entry, problem = _load(folder)
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        if entry is not None:
            out.append({**entry.meta, "bytes": size, "path": str(folder), "status": "ok"})
        elif broken:
            out.append({"key": folder.name, "bytes": size, "path": str(folder), "status": "broken", "problem": problem})
    return out


def clear(root: Path, keys: Sequence[str] | None = None) -> list[str]:
    """Remove entries (sound or broken) whose key starts with one of `keys` (all when None);
    returns the removed keys. Only folders this cache made are touched (see :data:`MARKER`).
    Clearing everything also removes leftovers of interrupted builds whose process is gone.
    An entry that stays (a read-only cache, ...) raises ConfigError naming how many stayed and why."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    removed: list[tuple[str, list[str]]] = []
    kept: list[tuple[str, list[str]]] = []
    for entry in list_entries(root, broken=True):
        if keys is None or any(entry["key"].startswith(k) for k in keys):
            errors = _rmtree(Path(entry["path"]))
            (kept if Path(entry["path"]).exists() else removed).append((entry["key"], errors))
    if kept:
        why = next((e[0] for _, e in kept if e), "still there")
        raise ConfigError(
            f"could not remove {len(kept)} of {len(kept) + len(removed)} entries ({why}); removed {len(removed)}",
            file=root,
        )
    if keys is None:  # leftovers of builds whose process is gone
        for p in root.iterdir():
            m = _TMP_RE.fullmatch(p.name)
            if m and p.is_dir() and not p.is_symlink() and not _alive(m.group(2)):
                shutil.rmtree(p, ignore_errors=True)
    return [key for key, _ in removed]


def _rmtree(path: Path) -> list[str]:
    """Remove `path`; returns why parts of it could not be removed (empty when all went)."""
    errors: list[str] = []
    shutil.rmtree(path, onerror=lambda _f, _p, info: errors.append(getattr(info[1], "strerror", None) or str(info[1])))
    return errors


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
