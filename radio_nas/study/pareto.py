"""Pareto ranks and hypervolume over any number of objectives with mixed directions.

    import numpy as np
    from radio_nas.study.pareto import pareto_ranks, hypervolume, normalised_hypervolume
    pts = np.array([[0.9, 2.0], [0.8, 1.0], [0.7, 3.0]])     # fidelity (max), GMACs (min)
    pareto_ranks(pts, ["maximize", "minimize"]).tolist()
    [1, 1, 2]
    hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), reference=np.array([3.0, 3.0]))
    3.0

Conventions: a point *dominates* another when it is no worse in every objective and strictly
better in at least one (Optuna's definition), so identical points share a rank. Rank 1 is the
non-dominated (Pareto) set; rank k is the Pareto set once ranks < k are removed.
Hypervolume is computed exactly (slicing over the last objective, a sweep in 2-D), which is fast
for the few hundred points a sweep produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radio_nas._config import ConfigError

Direction = str  # "maximize" | "minimize"

REFERENCE_MARGIN = 0.1
"""The normalised reference point is the worst candidate value plus this share of each range."""


def to_minimisation(values: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Values as a float (n, m) array where smaller is better in every column."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"expected an (n, m) array of objective values, got shape {values.shape}")
    if values.shape[1] != len(directions):
        raise ValueError(f"{values.shape[1]} objective columns but {len(directions)} directions")
    signs = np.array([_sign(d) for d in directions], dtype=float)
    return values * signs


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether minimisation point `a` dominates `b`."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_ranks(values: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Non-dominated-sorting rank (1 = Pareto front) of every row of `values` (n, m)."""
    pts = to_minimisation(values, directions)
    if not np.isfinite(pts).all():
        raise ValueError("objective values must be finite (filter failed trials first)")
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=int)
    # dom[i, j]: i dominates j (pairwise; n is at most a few thousand trials)
    le = (pts[:, None, :] <= pts[None, :, :]).all(axis=2)
    lt = (pts[:, None, :] < pts[None, :, :]).any(axis=2)
    dom = np.logical_and(le, lt)
    remaining_dominators = dom.sum(axis=0)
    ranks = np.zeros(n, dtype=int)
    front = np.flatnonzero(remaining_dominators == 0)
    rank = 1
    while front.size:
        ranks[front] = rank
        remaining_dominators -= dom[front].sum(axis=0)
        remaining_dominators[ranks > 0] = -1  # never pick an assigned row again
        front = np.flatnonzero(remaining_dominators == 0)
        rank += 1
    return ranks


def pareto_mask(values: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Boolean mask of the non-dominated rows."""
    return pareto_ranks(values, directions) == 1


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by minimisation `points` (n, m) and bounded by `reference` (m,).

    Points not strictly better than the reference in every objective contribute nothing.
    """
    pts = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if pts.size == 0:
        return 0.0
    if pts.ndim != 2 or pts.shape[1] != ref.shape[0]:
        raise ValueError(f"points {pts.shape} and reference {ref.shape} do not match")
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_ranks(pts, ["minimize"] * pts.shape[1]) == 1]
    return float(_hv(np.unique(pts, axis=0), ref))


def _hv(pts: np.ndarray, ref: np.ndarray) -> float:
    m = pts.shape[1]
    if m == 1:
        return float(ref[0] - pts[:, 0].min())
    if m == 2:
        order = np.argsort(pts[:, 0], kind="stable")
        volume, best_y = 0.0, ref[1]
        for x, y in pts[order]:
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return volume
    # Slice along the last objective: between consecutive levels the covered region is the
    # (m-1)-D hypervolume of the points at or below the level.
    order = np.argsort(pts[:, -1], kind="stable")
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        depth = upper - pts[i, -1]
        if depth > 0:
            sub = pts[: i + 1, :-1]
            sub = sub[pareto_ranks(sub, ["minimize"] * sub.shape[1]) == 1]
            volume += depth * _hv(np.unique(sub, axis=0), ref[:-1])
    return volume


@dataclass(frozen=True)
class HypervolumeResult:
    """Hypervolume of a front in normalised objective space, with how it was set up."""

    value: float
    """Share of the unit box [0, 1 + margin]^m (scaled to 1) dominated by the front."""
    reference: list[float]
    """Reference point in the original units and directions of each objective."""
    ideal: list[float]
    """Best candidate value per objective (the normalisation's 0)."""
    nadir: list[float]
    """Worst candidate value per objective (the normalisation's 1)."""
    margin: float

    def describe(self) -> str:
        return (
            f"objectives normalised to [0, 1] between the best and worst value among the "
            f"candidates (min-max, oriented so smaller is better); reference point = worst + "
            f"{self.margin:g} x range in every objective (= {_fmt_list(self.reference)} in "
            f"original units); value divided by the box volume (1 + {self.margin:g})^m, so 1.0 "
            f"would be a single point at the ideal"
        )


def normalised_hypervolume(
    values: np.ndarray, directions: Sequence[Direction], margin: float = REFERENCE_MARGIN
) -> HypervolumeResult:
    """Hypervolume of the candidates `values` (n, m) after min-max normalisation.

    The reference point is the worst candidate value in each objective nudged by `margin` times
    the range, so every candidate (the extremes of the front included) contributes. Objectives with
    zero range are scaled by 1 instead of 0. The result is divided by the volume of the box between
    the ideal point and the reference, so it lies in [0, 1].
    """
    pts = to_minimisation(values, directions)
    m = len(directions)
    if len(pts) == 0:
        return HypervolumeResult(0.0, [float("nan")] * m, [float("nan")] * m, [float("nan")] * m, margin)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (pts - lo) / span
    ref_norm = np.full(m, 1.0 + margin)
    value = hypervolume(norm, ref_norm) / float(np.prod(ref_norm))
    signs = np.array([_sign(d) for d in directions], dtype=float)
    reference = (lo + ref_norm * span) * signs
    return HypervolumeResult(value, reference.tolist(), (lo * signs).tolist(), (hi * signs).tolist(), margin)


def _sign(direction: Direction) -> float:
    d = str(getattr(direction, "name", direction)).lower()  # accepts optuna's StudyDirection too
    if d in ("maximize", "max"):
        return -1.0
    if d in ("minimize", "min"):
        return 1.0
    raise ConfigError(f"expected 'maximize' or 'minimize', got {direction!r}", key="direction")


def _fmt_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
