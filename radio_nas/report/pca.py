"""PCA pictures of spatial features (AM-RADIO supplementary §B): the features' top 3 principal components as RGB.

    from radio_nas.report.pca import StudentFeatures, load_image, pca_rgb, feature_pictures, resized, save_panel
    image = load_image("photo.jpg")                  # or "skimage:astronaut"
    rgb = pca_rgb(features[0])                        # (D, h, w) -> (h, w, 3) in [0, 1]
    pictures = feature_pictures({"student": StudentFeatures(model)}, image, resolution=(224, 320))
    save_panel(resized(image, (224, 320)), pictures, "pca.png")

Any resolution and aspect ratio works (the student needs multiples of 32). Each component is
scaled to [0, 1] between its 1st and 99th percentile over the picture's tokens, and its sign is
fixed so that the token with the largest |projection| is positive: the same model on the same
picture gives the same colours on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radio_nas._config import ConfigError
from radio_nas._util import atomic_path
from radio_nas.constants import IMAGENET_MEAN, IMAGENET_STD

BUILTIN_PREFIX = "skimage:"
DEFAULT_IMAGE = "skimage:astronaut"


def pca_rgb(features: torch.Tensor | np.ndarray, clip: float = 1.0) -> np.ndarray:
    """(D, h, w) features -> (h, w, 3) float32 picture in [0, 1] (top-3 principal components)."""
    feats = torch.as_tensor(features, dtype=torch.float64)
    if feats.ndim == 4 and feats.shape[0] == 1:
        feats = feats[0]
    if feats.ndim != 3:
        raise ValueError(f"expected (D, h, w) features, got shape {tuple(feats.shape)}")
    d, h, w = feats.shape
    tokens = feats.reshape(d, h * w).T  # (N, D)
    tokens = tokens - tokens.mean(dim=0, keepdim=True)
    # SVD of the centred tokens: rows of vh are the principal directions
    _, _, vh = torch.linalg.svd(tokens, full_matrices=False)
    k = min(3, vh.shape[0])
    proj = tokens @ vh[:k].T  # (N, k)
    if k < 3:  # fewer tokens/channels than 3 components: pad with zeros
        proj = torch.cat([proj, torch.zeros(proj.shape[0], 3 - k, dtype=proj.dtype)], dim=1)
    idx = proj.abs().argmax(dim=0)
    signs = torch.sign(proj[idx, torch.arange(3)])
    proj = proj * torch.where(signs == 0, torch.ones_like(signs), signs)
    lo = torch.quantile(proj, clip / 100.0, dim=0)
    hi = torch.quantile(proj, 1.0 - clip / 100.0, dim=0)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    rgb = ((proj - lo) / span).clamp(0.0, 1.0)
    return rgb.reshape(h, w, 3).numpy().astype(np.float32)


def load_image(source: str | Path) -> np.ndarray:
    """An RGB picture as float32 (H, W, 3) in [0, 1]: a file, or ``skimage:<name>`` (bundled)."""
    text = str(source)
    if text.startswith(BUILTIN_PREFIX):
        from skimage import data

        name = text[len(BUILTIN_PREFIX) :]
        loader = getattr(data, name, None)
        if loader is None or not callable(loader):
            raise ConfigError(
                f"no bundled scikit-image picture {name!r} (try astronaut, chelsea, coffee, rocket)", key="--image"
            )
        array = loader()
    else:
        path = Path(text)
        if not path.is_file():
            raise ConfigError("no such image file", file=path, key="--image")
        from skimage import io

        try:
            array = io.imread(str(path))
        except Exception as exc:
            raise ConfigError(f"cannot read the image: {str(exc).splitlines()[0]}", file=path, key="--image") from None
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ConfigError(f"expected an RGB picture, got shape {array.shape}", file=text, key="--image")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    return array / 65535.0 if array.max() > 1.0 else array


def default_resolution(height: int, width: int, short_side: int = 224, multiple: int = 32) -> tuple[int, int]:
    """Keep the picture's aspect ratio with its short side near `short_side`, sides multiples of 32."""
    scale = short_side / min(height, width)
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )


def to_batch(image: np.ndarray, resolution: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) float32 RGB in [0, 1], resized (bilinear, antialiased) to `resolution`."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=resolution, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def resized(image: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """The picture exactly as the student sees it, (H, W, 3) in [0, 1] (for display)."""
    return to_batch(image, resolution)[0].permute(1, 2, 0).numpy()


STUDENT_MEAN = IMAGENET_MEAN
STUDENT_STD = IMAGENET_STD
"""How trials feed the student (``radio_nas.distill.trial``): RGB in [0, 1], ImageNet mean/std."""


class StudentFeatures:
    """A student as the trials ran it: normalises [0, 1] RGB with ImageNet mean/std first."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self.mean = torch.tensor(STUDENT_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STUDENT_STD).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> Any:
        return self.model((images - self.mean) / self.std)


FeatureFn = Callable[[torch.Tensor], Any]
"""Anything called on a (B, 3, H, W) RGB batch in [0, 1] that returns (summary, features)."""


@torch.no_grad()
def feature_pictures(
    models: Mapping[str, FeatureFn], image: np.ndarray, resolution: tuple[int, int]
) -> dict[str, np.ndarray]:
    """PCA picture per named model of `image`: students (:class:`StudentFeatures` or modules) see
    it at `resolution`; anything else (a teacher, which resizes to its own input size) sees the
    full picture, as teachers see crops at full quality in the trials."""
    batch = to_batch(image, resolution)
    full = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    pictures = {}
    for name, fn in models.items():
        if isinstance(fn, torch.nn.Module):
            fn.eval()
        student = isinstance(fn, (torch.nn.Module, StudentFeatures))
        out = fn(batch if student else full)
        features = out[1] if isinstance(out, (tuple, list)) else out
        pictures[name] = pca_rgb(torch.as_tensor(features)[0])
    return pictures


def save_panel(
    image: np.ndarray, pictures: Mapping[str, np.ndarray], out: str | Path, title: str | None = None
) -> Path:
    """Input picture and each PCA picture side by side (same size, nearest upsampling) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 1 + len(pictures)
    height, width = image.shape[:2]
    fig, axes = plt.subplots(
        1,
        n,
        figsize=(3.2 * n * width / max(height, width) + 0.5, 3.2 * height / max(height, width) + 0.6),
        squeeze=False,
    )
    panels = [("input", image), *((f"{name} ({p.shape[0]}x{p.shape[1]})", p) for name, p in pictures.items())]
    for ax, (label, picture) in zip(axes[0], panels):
        ax.imshow(picture, interpolation="nearest", extent=(0, width, height, 0))
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:  # never leave a half-written picture behind
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out
