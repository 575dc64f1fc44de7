"""PNG plots of a sweep (matplotlib, Agg backend): trade-off scatter with the front highlighted,
per-parameter effects, and ablation error bars.

    >>> from radio_nas.report.plots import tradeoff_plot, parameter_effects_plot, ablation_plot
    >>> tradeoff_plot(table, x="gmacs", y="fidelity", out="results/mra/fidelity_vs_gmacs.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radio_nas._util import atomic_path
from radio_nas.report.pareto import pareto_mask

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


def _level_key(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
