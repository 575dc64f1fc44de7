"""PNG plots of a sweep (matplotlib, Agg backend): trade-off scatter with the front highlighted,
per-parameter effects, parallel coordinates, parameter importances and ablation error bars.

    from radio_nas.report.plots import tradeoff_plot, parameter_effects_plot, ablation_plot
    tradeoff_plot(table, x="gmacs", y="fidelity", out="results/mra/fidelity_vs_gmacs.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radio_nas._util import atomic_path
from radio_nas.study.pareto import pareto_mask

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    _plt().close(fig)
    return out


def tradeoff_plot(
    table: pd.DataFrame,
    x: str,
    y: str,
    out: str | Path,
    *,
    x_label: str | None = None,
    y_label: str | None = None,
    title: str | None = None,
    x_direction: str = "minimize",
    y_direction: str = "maximize",
) -> Path | None:
    """Scatter of trained trials (y vs x), the Pareto front (rank 1 over all objectives) in red and
    labelled with trial numbers; others coloured by Pareto rank. None if nothing to plot."""
    plt = _plt()
    ok = table[table["candidate"].astype(bool)].copy()
    if ok.empty or x not in ok or y not in ok:
        return None
    ok = ok[np.isfinite(ok[x].astype(float)) & np.isfinite(ok[y].astype(float))]
    if ok.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    rest = ok[~ok["pareto"]]
    if not rest.empty:
        ranks = rest["pareto_rank"].astype(float)
        sc = ax.scatter(
            rest[x].astype(float),
            rest[y].astype(float),
            c=ranks,
            cmap="viridis_r",
            s=28,
            alpha=0.8,
            vmin=1,
            vmax=max(2.0, float(ranks.max())),
            label="dominated (colour = Pareto rank)",
        )
        if ranks.nunique() > 1:
            fig.colorbar(sc, ax=ax, label="Pareto rank")
    # the front of just these two objectives (x smaller, y larger is better), as a staircase
    pts = ok[[x, y]].to_numpy(dtype=float)
    two = pts[pareto_mask(pts, [x_direction, y_direction])]
    two = two[np.argsort(two[:, 0])]
    ax.step(
        two[:, 0], two[:, 1], where="post", color="red", alpha=0.4, linestyle="--", label=f"front of {y} vs {x} only"
    )
    front = ok[ok["pareto"]].sort_values(x)
    ax.scatter(
        front[x].astype(float),
        front[y].astype(float),
        c="red",
        s=60,
        edgecolors="black",
        zorder=3,
        label="Pareto front (all objectives)",
    )
    for _, row in front.iterrows():
        ax.annotate(
            f"#{int(row['number'])}",
            (float(row[x]), float(row[y])),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    ax.set_xlabel(x_label or x)
    ax.set_ylabel(y_label or y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def parameter_effects_plot(table: pd.DataFrame, params: list[str], metric: str, out: str | Path) -> Path | None:
    """One panel per search parameter: `metric` of each trained trial against the parameter's value
    (categorical values as strips with their mean marked). None if there is nothing to plot."""
    plt = _plt()
    ok = table[table["candidate"].astype(bool)]
    params = [p for p in params if f"param.{p}" in ok and ok[f"param.{p}"].notna().any()]
    if ok.empty or not params or metric not in ok:
        return None
    cols = min(3, len(params))
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, params):
        data = ok[[f"param.{name}", metric, "pareto"]].dropna(subset=[f"param.{name}"])
        values = data[f"param.{name}"]
        numeric = pd.api.types.is_numeric_dtype(values) and values.nunique() > 6
        if numeric:
            ax.scatter(values.astype(float), data[metric], c=np.where(data["pareto"], "red", "tab:blue"), s=20)
        else:
            levels = sorted(values.astype(str).unique(), key=_level_key)
            pos = {lvl: i for i, lvl in enumerate(levels)}
            xs = values.astype(str).map(pos).to_numpy(dtype=float)
            jitter = (np.random.default_rng(0).random(len(xs)) - 0.5) * 0.2
            ax.scatter(xs + jitter, data[metric], c=np.where(data["pareto"], "red", "tab:blue"), s=20)
            means = data.groupby(values.astype(str))[metric].mean()
            ax.scatter([pos[lvl] for lvl in means.index], means.values, marker="_", s=400, c="black")
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels(levels, rotation=20, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params) :]:
        ax.axis("off")
    fig.suptitle(f"{metric} per parameter (red: Pareto front; black bar: mean)", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def ablation_plot(tables: dict[str, pd.DataFrame], metric: str, out: str | Path) -> Path | None:
    """Error bars (mean ± 95% CI) of `metric` per level, one panel per factor."""
    plt = _plt()
    tables = {k: v for k, v in tables.items() if not v.empty and f"{metric}_mean" in v}
    if not tables:
        return None
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (factor, frame) in zip(axes[0], tables.items()):
        xs = np.arange(len(frame))
        err = frame[f"{metric}_ci95"].fillna(0.0).to_numpy(dtype=float)
        ax.errorbar(xs, frame[f"{metric}_mean"].to_numpy(dtype=float), yerr=err, fmt="o", capsize=5)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{lvl}\n(n={n_})" for lvl, n_ in zip(frame["level"], frame["n"])], fontsize=8)
        ax.set_title(factor, fontsize=9)
        ax.set_ylabel(f"{metric} (mean ± 95% CI)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


@dataclass(frozen=True)
class Axis:
    """One vertical axis of :func:`parallel_coordinates_plot`."""

    column: str
    """The table column (``param.<name>`` or an objective metric)."""
    label: str
    levels: tuple[str, ...] | None = None
    """Categorical: the values (as ``str`` of the table's cells) in axis order, bottom to top."""
    low: float | None = None
    high: float | None = None
    """Numeric: the range (the space's, for a parameter); the data's when None."""
    log: bool = False
    better_up: bool | None = None
    """An objective: flip a minimised one so that better is always up."""


def parallel_coordinates_plot(
    table: pd.DataFrame, axes: Sequence[Axis], out: str | Path, *, title: str | None = None
) -> Path | None:
    """One line per fully trained trial across the parameter and objective `axes`, coloured by
    Pareto rank (red, drawn last: the front). Categorical axes place the choices evenly, with a
    small fixed jitter so that trials sharing a choice stay apart. None if there is nothing to plot."""
    plt = _plt()
    ok = table[table["candidate"].astype(bool)]
    axes = [a for a in axes if a.column in ok and ok[a.column].notna().any()]
    if ok.empty or len(axes) < 2:
        return None
    jitter = (np.random.default_rng(0).random(len(ok)) - 0.5) * 0.06
    ys = np.full((len(ok), len(axes)), np.nan)
    ticks: list[tuple[list[float], list[str]]] = []
    for j, axis in enumerate(axes):
        column = ok[axis.column]
        if axis.levels is not None:
            k = len(axis.levels)
            pos = {lvl: (i / (k - 1) if k > 1 else 0.5) for i, lvl in enumerate(axis.levels)}
            ys[:, j] = np.array([_position(pos, v) for v in column]) + jitter
            ticks.append((list(pos.values()), [_short(lvl) for lvl in axis.levels]))
            continue
        v = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        lo = axis.low if axis.low is not None else float(np.nanmin(v))
        hi = axis.high if axis.high is not None else float(np.nanmax(v))
        f = np.log if axis.log and lo > 0 else (lambda x: x)
        span = float(f(hi) - f(lo)) or 1.0
        ys[:, j] = (f(v) - f(lo)) / span
        ends = [0.0, 0.5, 1.0]
        labels = [_fmt(lo), _fmt(float(np.exp((f(lo) + f(hi)) / 2)) if f is np.log else (lo + hi) / 2), _fmt(hi)]
        if axis.better_up is False:  # minimised: the smallest value on top
            ys[:, j] = 1.0 - ys[:, j]
            ends = [1.0, 0.5, 0.0]
        ticks.append((ends, labels))
    ranks = ok["pareto_rank"].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(max(6.4, 1.9 * len(axes)), 4.8))
    cmap = plt.get_cmap("viridis_r")
    vmax = max(2.0, float(np.nanmax(ranks)))
    xs = np.arange(len(axes))
    for i in np.argsort(-ranks, kind="stable"):  # worst first, the front on top
        front = ranks[i] == 1
        ax.plot(
            xs,
            ys[i],
            color="red" if front else cmap((ranks[i] - 1) / (vmax - 1)),
            lw=2.0 if front else 1.0,
            alpha=0.9 if front else 0.6,
            zorder=3 if front else 2,
        )
    for j, (positions, labels) in enumerate(ticks):
        ax.axvline(j, color="black", lw=0.8, zorder=1)
        for y, text in zip(positions, labels):
            ax.annotate(text, (j, y), xytext=(3, 0), textcoords="offset points", fontsize=7, va="center")
    ax.set_xticks(xs)
    ax.set_xticklabels([a.label for a in axes], rotation=15, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.2, len(axes) - 0.5)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, vmax))
    bar = fig.colorbar(sm, ax=ax, label="Pareto rank (red: 1, the front)")
    if vmax <= 12:
        bar.set_ticks(range(1, int(vmax) + 1))
    n = len(ok)
    ax.set_title(title or f"{n} fully trained trials; objectives: better is up", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def importance_plot(rows: Sequence[dict[str, Any]], out: str | Path, *, title: str | None = None) -> Path | None:
    """Horizontal bars of each parameter's importance share per objective, with the 10th-90th
    percentile over subsets as a whisker; `rows` as :meth:`Importances.rows`. None if none measured."""
    plt = _plt()
    frame = pd.DataFrame([r for r in rows if r.get("share") is not None])
    if frame.empty:
        return None
    objectives = list(dict.fromkeys(frame["objective"]))
    height = 1.5 + 0.45 * frame["parameter"].nunique()
    fig, axes = plt.subplots(1, len(objectives), figsize=(4.0 * len(objectives), height), squeeze=False)
    for ax, metric in zip(axes[0], objectives):
        part = frame[frame["objective"] == metric].iloc[::-1]
        ys = np.arange(len(part))
        share = part["share"].to_numpy(dtype=float)
        lo = part["share_p10"].astype(float).fillna(pd.Series(share, index=part.index)).to_numpy()
        hi = part["share_p90"].astype(float).fillna(pd.Series(share, index=part.index)).to_numpy()
        chance = part["p_chance"].astype(float).to_numpy()
        ax.barh(ys, share, color=np.where(chance < 0.05, "tab:blue", "lightgray"), edgecolor="black", lw=0.5)
        whisker = [np.clip(share - lo, 0, None), np.clip(hi - share, 0, None)]
        ax.errorbar(share, ys, xerr=whisker, fmt="none", c="black", capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels(part["parameter"], fontsize=8)
        ax.set_xlim(0, 1)
        n, top = int(part["n_trials"].iloc[0]), int(part["n_top"].iloc[0])
        ax.set_title(f"{metric} (n={n}, best {top})", fontsize=9)
        ax.set_xlabel("importance share", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    default = "PED-ANOVA importance (grey: p >= 0.05 against shuffled values; whisker: 80% of subsets)"
    fig.suptitle(title or default, fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def _position(positions: dict[str, float], value: Any) -> float:
    """A categorical cell's place on its axis (a column with gaps holds 16 as 16.0); NaN if absent."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return float("nan")
    if str(value) in positions:
        return positions[str(value)]
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return positions.get(str(int(value)), float("nan"))
    return float("nan")


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _level_key(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
