"""Ablation tables: per factor and level, mean ± 95% confidence interval over seeds.

    >>> from radio_nas.report.ablation import factor_names, factor_table
    >>> factors = factor_names(table)                         # ["arch.mra_pattern", ...]
    >>> factor_table(table, "arch.mra_pattern", ["fidelity", "gmacs"])
       level  n  n_seeds  fidelity_mean  fidelity_ci95  fidelity_std ...

A factor is any search parameter except the seed (``pipeline.seed``/``seed``). Only fully trained
trials count. For each level the statistics pool every trained trial at that level (for a grid
ablation these are marginal means over the other factors; for one-factor-at-a-time, the other
factors sit at their base level). The interval is the two-sided Student-t interval
``mean ± t(0.975, n-1) · s / sqrt(n)``; with one run it is undefined (NaN).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

SEED_PARAMS = ("param.pipeline.seed", "param.seed")


def factor_names(table: pd.DataFrame) -> list[str]:
    """Search parameters that vary among trained trials (without the ``param.`` prefix)."""
    ok = table[table["candidate"].astype(bool)]
    names = []
    for col in table.columns:
        if col.startswith("param.") and col not in SEED_PARAMS:
            if ok[col].astype(str).nunique(dropna=True) > 1:
                names.append(col[len("param."):])
    return names


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, half-width of the t interval, sample std) of `values` (NaN where undefined)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if n == 1:
        return (mean, math.nan, math.nan)
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return (mean, half, std)


def factor_table(table: pd.DataFrame, factor: str, metrics: list[str],
                 confidence: float = 0.95) -> pd.DataFrame:
    """One row per level of `factor`: n runs, n distinct seeds, and per metric mean/ci95/std."""
    ok = table[table["candidate"].astype(bool)]
    col = f"param.{factor}"
    seed_col = next((c for c in SEED_PARAMS if c in ok.columns), "seed")
    rows = []
    levels = ok[col].dropna().unique().tolist()
    for level in _sorted_levels(levels):
        group = ok[ok[col] == level]
        row: dict[str, object] = {"level": level, "n": len(group),
                                  "n_seeds": int(group[seed_col].nunique()) if seed_col in group else len(group)}
        for metric in metrics:
            mean, half, std = mean_ci(group[metric].to_numpy(dtype=float), confidence)
            row[f"{metric}_mean"], row[f"{metric}_ci95"], row[f"{metric}_std"] = mean, half, std
        rows.append(row)
    return pd.DataFrame(rows)


def _sorted_levels(levels: list[object]) -> list[object]:
    try:
        return sorted(levels)  # type: ignore[type-var]
    except TypeError:
        return sorted(levels, key=str)
