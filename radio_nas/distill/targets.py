"""Teacher-target statistics and standardisation (PHI-S, Ranzinger et al. 2024, arXiv 2410.01680).

    stats = entry_stats(entry)                               # fitted once, kept beside the cache entry
    tf = TargetTransform(stats.features, "phi-s")            # an nn.Module over (B, C, h, w) maps
    z = tf(features)                                         # what the loss sees
    tf.inverse(z)                                            # back in teacher space (== features)

Statistics per term of one teacher, over the cached training targets: the mean (the summary vector;
for features the per-position mean map), each channel's std and the eigen-decomposition of the
channel covariance of the centred values (for features, pooled over positions). ``phi-s`` maps
x -> alpha * H U^T (x - mean), with U the eigenvectors, H a normalised Hadamard matrix and one
alpha = 1 / sqrt(mean eigenvalue): every output dimension then has unit variance and the map is
orthogonal up to alpha, so it inverts exactly. ``channel`` is the per-channel z-score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from radio_nas._util import atomic_path

if TYPE_CHECKING:
    from radio_nas.distill.cache import CacheEntry

Standardize = Literal["none", "channel", "phi-s"]
STATS_FILE = "stats-v1.npz"
"""Written into a teacher cache entry's folder the first time a trial needs its statistics."""
_STD_FLOOR = 1e-3
"""A channel's std is floored at this share of the mean std: a channel constant over the training
crops (std 0) would otherwise blow up on held-out crops where it is not."""


@dataclass(frozen=True)
class TermStats:
    """Statistics of one term (summary or features) of one teacher over its training targets."""

    mean: np.ndarray
    """(D,) for a summary; (C, h, w) for features (per position)."""
    std: np.ndarray
    """(D,) per-channel std of the centred values."""
    eigvals: np.ndarray
    """(D,) eigenvalues of the centred channel covariance, ascending, clipped at 0."""
    eigvecs: np.ndarray
    """(D, D) orthonormal eigenvectors (columns)."""


@dataclass(frozen=True)
class TargetStats:
    summary: TermStats
    features: TermStats


def fit_term(values: np.ndarray, *, chunk: int = 64) -> TermStats:
    """Statistics of (N, D) summaries or (N, C, h, w) feature maps, read `chunk` rows at a time (the
    cache is fp16 on disk and memory-mapped) and accumulated in float64."""
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 training targets to fit statistics, got {n}")
    total = np.zeros(values.shape[1:], np.float64)
    for i in range(0, n, chunk):
        total += np.asarray(values[i : i + chunk], dtype=np.float64).sum(0)
    mean = total / n
    d = values.shape[1]
    gram = np.zeros((d, d), np.float64)
    rows = 0
    for i in range(0, n, chunk):
        x = np.asarray(values[i : i + chunk], dtype=np.float32) - mean.astype(np.float32)
        x = x.reshape(x.shape[0], d, -1).transpose(0, 2, 1).reshape(-1, d)  # one row per token
        gram += (x.T @ x).astype(np.float64)
        rows += x.shape[0]
    cov = gram / max(rows - 1, 1)
    eigvals, eigvecs = np.linalg.eigh(cov)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return TermStats(
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        eigvals=np.clip(eigvals, 0.0, None).astype(np.float32),
        eigvecs=eigvecs.astype(np.float32),
    )


def entry_stats(entry: CacheEntry) -> TargetStats:
    """The statistics of a (training) cache entry: read from its folder, else fitted and written
    there atomically. Two trials racing on a new entry both fit it and write identical files."""
    path = entry.path / STATS_FILE if entry.path is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return TargetStats(*(TermStats(*(z[f"{t}_{f}"] for f in _FIELDS)) for t in TERMS))
        except (OSError, ValueError, KeyError):
            pass  # damaged or from another layout: fit again and replace it
    stats = TargetStats(fit_term(entry.summary), fit_term(entry.features))
    if path is not None:
        arrays = {f"{t}_{f}": getattr(getattr(stats, t), f) for t in TERMS for f in _FIELDS}
        try:
            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
        except OSError:
            pass  # a read-only cache still trains: the stats stay in memory
    return stats


TERMS = ("summary", "features")
_FIELDS = ("mean", "std", "eigvals", "eigvecs")


def hadamard(d: int) -> np.ndarray:
    """A (d, d) orthogonal matrix whose entries all have magnitude 1/sqrt(d) where d is a power of
    two (Sylvester's construction, via scipy): it turns a diagonal covariance into one whose
    diagonal is the mean eigenvalue. Other sizes get a fixed random rotation, which equalises the
    variances only approximately."""
    if d >= 1 and d & (d - 1) == 0:
        from scipy.linalg import hadamard as sylvester

        return sylvester(d).astype(np.float64) / math.sqrt(d)
    q, r = np.linalg.qr(np.random.default_rng(d).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


class TargetTransform(nn.Module):
    """x -> M (x - mean) over the channel dimension (dim 1), and its exact inverse. ``none`` is the
    identity (no centring either), so the raw-space recipe is unchanged."""

    mean: torch.Tensor
    fwd: torch.Tensor
    inv: torch.Tensor

    def __init__(self, stats: TermStats, mode: Standardize):
        super().__init__()
        self.mode = mode
        d = stats.std.shape[0]
        if mode == "none":
            fwd = inv = np.eye(d)
            mean = np.zeros_like(stats.mean)
        elif mode == "channel":
            std = np.maximum(stats.std.astype(np.float64), _STD_FLOOR * max(float(stats.std.mean()), 1e-12))
            fwd, inv = np.diag(1.0 / std), np.diag(std)
            mean = stats.mean
        else:
            alpha = 1.0 / math.sqrt(max(float(stats.eigvals.astype(np.float64).mean()), 1e-12))
            rot = hadamard(d) @ stats.eigvecs.astype(np.float64).T  # orthogonal
            fwd, inv = alpha * rot, rot.T / alpha
            mean = stats.mean
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("fwd", torch.as_tensor(fwd, dtype=torch.float32))
        self.register_buffer("inv", torch.as_tensor(inv, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        return _channels(x - self.mean, self.fwd)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return z
        return _channels(z, self.inv) + self.mean


def _channels(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """`matrix` applied to dim 1 of (B, D) or (B, C, h, w)."""
    if x.ndim == 2:
        return x @ matrix.T
    return torch.einsum("oc,bc...->bo...", matrix, x)
