"""Rank agreement and noise statistics for validating short trials against long ones.

    from radio_nas.validate.ranking import kendall_tau_b, spearman_rho, bootstrap_ci
    kendall_tau_b([0.1, 0.3, 0.2], [0.2, 0.5, 0.4])          # 1.0: same order
    spearman_rho([1, 2, 2, 3], [1, 3, 2, 4])                   # ties get average ranks
    bootstrap_ci(kendall_tau_b, short, long, n_boot=2000, seed=0)   # (low, high), deterministic
    gap_share(means, noise=0.004)                               # share of adjacent gaps > 2 * noise

Kendall's tau-b and Spearman's rho match ``scipy.stats.kendalltau`` / ``spearmanr`` (ties included);
they are written with numpy so the bootstrap can evaluate thousands of resamples at once. A
statistic that is undefined (fewer than two distinct values on a side) is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _pairs(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two 1-D sequences of one length, got shapes {a.shape} and {b.shape}")
    return a, b


def _tau_b_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tau-b of each row pair of (R, n) arrays."""
    da = np.sign(a[:, :, None] - a[:, None, :])
    db = np.sign(b[:, :, None] - b[:, None, :])
    s = (da * db).sum(axis=(1, 2)) / 2.0  # concordant - discordant
    na = (da != 0).sum(axis=(1, 2)) / 2.0  # pairs not tied in a
    nb = (db != 0).sum(axis=(1, 2)) / 2.0
    denom = np.sqrt(na * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, s / np.where(denom > 0, denom, 1.0), np.nan)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis; tied values share their average rank."""
    below = (a[..., None, :] < a[..., :, None]).sum(axis=-1)
    equal = (a[..., None, :] == a[..., :, None]).sum(axis=-1)
    return below + (equal + 1) / 2.0


def _spearman_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra = _average_ranks(a)
    rb = _average_ranks(b)
    ra = ra - ra.mean(axis=1, keepdims=True)
    rb = rb - rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b (tie-corrected); NaN if either side has no two distinct values."""
    a, b = _pairs(x, y)
    return float(_tau_b_batched(a[None], b[None])[0]) if a.size >= 2 else float("nan")


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho: Pearson correlation of average ranks; NaN if a side is constant."""
    a, b = _pairs(x, y)
    return float(_spearman_batched(a[None], b[None])[0]) if a.size >= 2 else float("nan")


_BATCHED: dict[Callable[..., float], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    kendall_tau_b: _tau_b_batched,
    spearman_rho: _spearman_batched,
}


def bootstrap_ci(
    statistic: Callable[[ArrayLike, ArrayLike], float],
    x: ArrayLike,
    y: ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(x, y)`` resampling the paired items (variants).

    Deterministic for a given `seed`. Resamples where the statistic is undefined (every drawn
    variant the same, say) are left out; (NaN, NaN) if fewer than half of them are defined.
    """
    a, b = _pairs(x, y)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if a.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    batched = _BATCHED.get(statistic)
    if batched is not None:
        stats = batched(a[idx], b[idx])
    else:
        stats = np.array([statistic(a[i], b[i]) for i in idx], dtype=float)
    stats = stats[np.isfinite(stats)]
    if stats.size < n_boot / 2:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def seed_std(values: ArrayLike) -> float:
    """Sample standard deviation (ddof=1) of one variant's fidelity over seeds; NaN with one seed."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size >= 2 else float("nan")


def adjacent_gaps(means: ArrayLike) -> np.ndarray:
    """Gaps between neighbours when the variants are sorted by mean fidelity."""
    m = np.sort(np.asarray(means, dtype=float)[np.isfinite(np.asarray(means, dtype=float))])
    return np.diff(m)


def gap_share(means: ArrayLike, noise: float, factor: float = 2.0) -> float:
    """Share of neighbour gaps (variants in fidelity order) larger than ``factor * noise``.

    NaN when there is no gap (fewer than two variants) or the noise is unknown.
    """
    gaps = adjacent_gaps(means)
    if gaps.size == 0 or not np.isfinite(noise):
        return float("nan")
    return float(np.mean(gaps > factor * noise))
