"""Image sources and the deterministic random-resized-crop stream of a trial.

    from radio_nas.distill.data import open_dataset
    ds = open_dataset(pipeline.data)                 # bundled photos, an image folder or tar shards
    crops = ds.crops("train", range(8), (128, 128))  # uint8 (8, 3, 128, 128); same box for any size
    ds.labels("train", range(8))                      # class per crop (or None without labels)

A crop is a pure function of (data.seed, split, index): its source image, box and flip come from a
random generator seeded with those, so teacher outputs can be cached and re-used by any trial.
Unreadable images are skipped (the next readable one is used) and counted in ``ds.skipped``.
"""

from __future__ import annotations

import glob
import hashlib
import io
import math
import os
import tarfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radio_nas._config import ConfigError
from radio_nas._shipped import PHOTOS
from radio_nas.distill.pipeline import DataConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "logo",
)
"""Colour images bundled in the scikit-image wheel (no download)."""
SKIMAGE_EVAL_PHOTOS = ("chelsea", "immunohistochemistry")
"""Held out whole for evaluation by default: one everyday photo and one microscopy image, so the eval
crops resemble both kinds the other eight cover (4 photos, hubble/retina, 2 synthetic images)."""
_SPLITS = {"train": 0, "eval": 1}


@dataclass(frozen=True)
class _Item:
    name: str
    label: int | None
    load: Callable[[], bytes | np.ndarray]


class CropDataset:
    """Images split into train / eval, each turned into a seeded random-resized-crop stream."""

    def __init__(self, cfg: DataConfig, items: dict[str, list[_Item]], classes: list[str] | None, fingerprint: str):
        self.cfg, self.classes, self.fingerprint = cfg, classes, fingerprint
        self._items = items
        self._decoded: dict[tuple[str, int], np.ndarray | None] = {}
        self._lock = threading.Lock()
        self._orders: dict[tuple[str, str], np.ndarray] = {}
        self.skipped: set[str] = set()
        for split in _SPLITS:
            if not items[split]:
                raise ConfigError(f"no images for the {split} split", key="data.path")

    @property
    def has_labels(self) -> bool:
        return self.classes is not None

    def size(self, split: str) -> int:
        return self.cfg.train_size if split == "train" else self.cfg.eval_size

    def crops(self, split: str, indices: Iterable[int], size: tuple[int, int]) -> np.ndarray:
        """uint8 (N, 3, H, W) crops number `indices` of `split`, resized to `size`."""
        out = [self._crop(split, int(i), size) for i in indices]
        return np.stack(out) if out else np.zeros((0, 3, *size), np.uint8)

    def labels(self, split: str, indices: Iterable[int]) -> np.ndarray | None:
        if not self.has_labels:
            return None
        return np.array([self._item(split, int(i))[1].label for i in indices], dtype=np.int64)

    def _rng(self, split: str, index: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, _SPLITS[split], index])

    def _order(self, split: str) -> np.ndarray:
        """A seeded permutation of the split's images: crop i uses image order[i % n] (balanced)."""
        key = ("order", split)
        if key not in self._orders:
            n = len(self._items[split])
            self._orders[key] = np.random.default_rng([self.cfg.seed, _SPLITS[split], 1 << 20]).permutation(n)
        return self._orders[key]

    def _item(self, split: str, index: int) -> tuple[np.ndarray, _Item]:
        """The decoded image for crop `index` (its own image, or the next readable one)."""
        items = self._items[split]
        order = self._order(split)
        start = int(order[index % len(items)])
        for k in range(len(items)):
            pos = (start + k) % len(items)
            image = self._decode(split, pos)
            if image is not None:
                return image, items[pos]
        raise ConfigError(
            f"none of the {len(items)} {split} images can be used: unreadable, or too small "
            f"(a side under {_MIN_SIDE} pixels)",
            key="data.path",
        )

    def _decode(self, split: str, pos: int) -> np.ndarray | None:
        key = (split, pos)
        with self._lock:
            if key in self._decoded:
                return self._decoded[key]
        item = self._items[split][pos]
        try:
            raw = item.load()
            if isinstance(raw, np.ndarray):
                image = raw
            else:
                with Image.open(io.BytesIO(raw)) as im:
                    image = np.asarray(im.convert("RGB"))
            image = _to_rgb(image)
        except Exception:
            image = None
            self.skipped.add(item.name)
        with self._lock:
            # Small sets are kept decoded; big ones would not fit, so only failures are remembered.
            if image is None or len(self._items[split]) <= 256:
                self._decoded[key] = image
        return image

    def _crop(self, split: str, index: int, size: tuple[int, int]) -> np.ndarray:
        image, _ = self._item(split, index)
        rng = self._rng(split, index)
        h, w = image.shape[:2]
        box = _random_box(rng, h, w, self.cfg.scale, self.cfg.ratio)
        flip = bool(rng.random() < 0.5) and self.cfg.hflip
        pil = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC, box=box)
        out = np.asarray(pil)
        if flip:
            out = out[:, ::-1]
        return np.ascontiguousarray(out.transpose(2, 0, 1))


class _CropMemo:
    """Each split's crops, kept by this process across trials (a reused Ray worker runs many):
    a crop is a pure function of the data settings and its index, and making one (decode, box,
    bicubic resize) costs about 2 s per trial of the CPU pipeline. Splits bigger than
    ``max_bytes`` are not kept."""

    max_bytes = 256 * 2**20

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._crops: np.ndarray = np.zeros(0, np.uint8)
        self._made: np.ndarray = np.zeros(0, bool)
        self._skipped: set[str] = set()
        self._lock = threading.Lock()  # trials in threads of one process share it

    def crops(self, dataset: CropDataset, split: str, idx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        n = dataset.size(split)
        if n * 3 * size[0] * size[1] > self.max_bytes or len(idx) == 0 or int(idx.max()) >= n:
            return dataset.crops(split, idx.tolist(), size)
        key = (dataset.fingerprint, repr(dataset.cfg), split, tuple(size))
        with self._lock:
            return self._crops_locked(dataset, split, idx, size, n, key)

    def _crops_locked(
        self, dataset: CropDataset, split: str, idx: np.ndarray, size: tuple[int, int], n: int, key: tuple[Any, ...]
    ) -> np.ndarray:
        if key != self._key:  # other data settings or size: keep only the latest
            self._key, self._skipped = key, set()
            self._crops, self._made = np.zeros((n, 3, *size), np.uint8), np.zeros(n, bool)
        missing = np.unique(idx[~self._made[idx]])
        if len(missing):
            self._crops[missing] = dataset.crops(split, missing.tolist(), size)
            self._made[missing] = True
            self._skipped |= dataset.skipped
        dataset.skipped |= self._skipped
        return self._crops[idx]


_KEPT = {split: _CropMemo() for split in _SPLITS}


def kept_crops(dataset: CropDataset, split: str, idx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:meth:`CropDataset.crops`, kept by this process across datasets of the same settings (see
    :class:`_CropMemo`: the next trial in a reused Ray worker does not make them again)."""
    return _KEPT[split].crops(dataset, split, idx, size)


def _random_box(
    rng: np.random.Generator, h: int, w: int, scale: Sequence[float], ratio: Sequence[float]
) -> tuple[float, float, float, float]:
    """torchvision-style RandomResizedCrop box (left, top, right, bottom), numpy-seeded."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
            return (left, top, left + cw, top + ch)
    side = min(h, w)  # fallback: central square
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


_MIN_SIDE = 8


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"not a usable image: shape {image.shape}")
    if min(image.shape[:2]) < _MIN_SIDE:
        raise ValueError(f"too small: {image.shape[1]}x{image.shape[0]} pixels (at least {_MIN_SIDE}x{_MIN_SIDE})")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def open_dataset(cfg: DataConfig) -> CropDataset:
    """The dataset a pipeline's ``data`` section describes."""
    if cfg.source == "photos":
        return _photos(cfg)
    if cfg.source == "skimage":
        return _skimage(cfg)
    if cfg.source == "folder":
        return _folder(cfg)
    return _tar(cfg)


def _skimage(cfg: DataConfig) -> CropDataset:
    import skimage.data

    names = list(cfg.images or SKIMAGE_PHOTOS)
    for i, name in enumerate(names):
        if not callable(getattr(skimage.data, name, None)):
            raise ConfigError(f"scikit-image has no image {name!r}", key=f"data.images[{i}]")
    if cfg.eval_images is not None:
        held = list(cfg.eval_images)
        for i, name in enumerate(held):
            if name not in names:
                raise ConfigError(
                    f"{name!r} is not one of the photos used ({', '.join(names)})", key=f"data.eval_images[{i}]"
                )
    else:
        held = [n for n in SKIMAGE_EVAL_PHOTOS if n in names] or names[-1:]
    train = [n for n in names if n not in held]
    if not held or not train:
        raise ConfigError(
            f"need at least one training photo and one held-out photo, got {len(train)} and {len(held)} of {names}",
            key="data.eval_images",
        )
    items = {
        split: [_Item(n, None, _skimage_loader(n)) for n in group]
        for split, group in (("train", train), ("eval", held))
    }
    # Whole photos are held out, so a photo's identity cannot serve as a kNN label: no labels.
    return CropDataset(cfg, items, None, f"skimage:{','.join(train)}|eval:{','.join(held)}")


def _photos(cfg: DataConfig) -> CropDataset:
    """The shipped photographs, held out whole by the file-name hash rule (``data.eval_fraction``)."""
    files = {p.stem: p for p in sorted(PHOTOS.glob("*.jpg"))}
    if not files:
        raise ConfigError(f"no bundled photos under {PHOTOS} (a broken install?)", key="data.source")
    names = list(cfg.images or files)
    for i, name in enumerate(names):
        if name not in files:
            raise ConfigError(f"no bundled photo {name!r}; see {PHOTOS / 'MANIFEST.csv'}", key=f"data.images[{i}]")
    items = [_Item(files[n].name, None, files[n].read_bytes) for n in names]
    stats = [(i.name, files[n].stat().st_size) for i, n in zip(items, names)]
    # Whole photos are held out, so a photo's identity cannot serve as a kNN label: no labels.
    return CropDataset(cfg, _split(cfg, items), None, f"photos:{_digest(stats)}")


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return _first(getattr(skimage.data, name)())

    return load


def _first(value: object) -> np.ndarray:
    """skimage loaders return an array, or a tuple whose first item is the image (stereo pairs)."""
    return np.asarray(value[0] if isinstance(value, tuple) else value)


def _held_out(name: str, fraction: float) -> bool:
    digest = hashlib.sha1(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def _split(cfg: DataConfig, items: list[_Item]) -> dict[str, list[_Item]]:
    split: dict[str, list[_Item]] = {"train": [], "eval": []}
    for item in items:
        split["eval" if _held_out(item.name, cfg.eval_fraction) else "train"].append(item)
    if not split["eval"] and len(split["train"]) > 1:  # tiny sets: hold out at least one image
        split["eval"].append(split["train"].pop())
    return split


def _folder(cfg: DataConfig) -> CropDataset:
    root = Path(cfg.path or "").expanduser()
    if not root.is_dir():
        raise ConfigError(f"not a directory: {root}", key="data.path")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[tuple[Path, int | None]] = []
    if classes:
        for label, cls in enumerate(classes):
            files += [(p, label) for p in sorted((root / cls).rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(p, None) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}", key="data.path")
    items = [_Item(str(p.relative_to(root)), label, p.read_bytes) for p, label in files]
    stats = [(i.name, os.path.getsize(root / i.name)) for i in items]
    return CropDataset(cfg, _split(cfg, items), classes or None, f"folder:{root.resolve()}:{_digest(stats)}")


def _tar_paths(path: str) -> list[Path]:
    p = Path(path).expanduser()
    if p.is_dir():
        return sorted(p.glob("*.tar"))
    if p.is_file():
        return [p]
    return sorted(Path(x) for x in glob.glob(str(p)))


def _tar(cfg: DataConfig) -> CropDataset:
    """Tar shards (webdataset style): ``key.jpg`` (+ optional ``key.cls`` holding an integer label),
    or ``class/name.jpg`` members whose folder names the class."""
    shards = _tar_paths(cfg.path or "")
    if not shards:
        raise ConfigError(f"no .tar shards at {cfg.path}", key="data.path")
    members: list[tuple[Path, str, int, int]] = []
    cls_text: dict[str, int] = {}
    folders: set[str] = set()
    for shard in shards:
        try:
            with tarfile.open(shard) as tf:
                for m in tf.getmembers():
                    if not m.isfile():
                        continue
                    base, suffix = os.path.splitext(m.name)
                    if suffix.lower() in IMAGE_SUFFIXES:
                        members.append((shard, m.name, m.offset_data, m.size))
                        folders.add(os.path.dirname(m.name))
                    elif suffix == ".cls":
                        data = tf.extractfile(m)
                        try:
                            cls_text[f"{shard}:{base}"] = int((data.read() if data else b"").strip())
                        except ValueError:
                            pass
        except (tarfile.TarError, OSError) as exc:
            raise ConfigError(f"cannot read tar shard {shard}: {exc}", key="data.path") from None
    if not members:
        raise ConfigError(f"no images in {len(shards)} tar shard(s)", key="data.path")
    classes: list[str] | None = None
    label_of: Callable[[Path, str], int | None]
    if cls_text:
        n = max(cls_text.values()) + 1
        classes = [str(i) for i in range(n)]
        label_of = lambda shard, name: cls_text.get(f"{shard}:{os.path.splitext(name)[0]}")
    elif len(folders) > 1:
        folder_classes = classes = sorted(folders)
        label_of = lambda shard, name: folder_classes.index(os.path.dirname(name))
    else:
        label_of = lambda shard, name: None

    def reader(shard: Path, offset: int, size: int) -> Callable[[], bytes]:
        def load() -> bytes:  # direct read at the member's offset: no re-scan of the shard
            with open(shard, "rb") as fh:
                fh.seek(offset)
                return fh.read(size)

        return load

    items = [_Item(f"{s.name}/{n}", label_of(s, n), reader(s, off, size)) for s, n, off, size in members]
    if classes is not None and any(i.label is None for i in items):
        classes = None  # partial labels: treat the set as unlabelled
        items = [_Item(i.name, None, i.load) for i in items]
    stats = [(str(s.resolve()), s.stat().st_size, s.stat().st_mtime_ns) for s in shards]
    return CropDataset(cfg, _split(cfg, items), classes, f"tar:{_digest(stats)}")


def _digest(data: object) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()[:16]
