"""What replayed sweeps found: medians and interquartile ranges over the repeats, the Markdown
tables ``radio-nas replay`` prints, and the hypervolume-ratio plot.

Hypervolume ratio: objectives are min-max normalised over the table's fully trained points (the
report's normalisation, :func:`radio_nas.study.pareto.normalised_hypervolume`, reference = worst +
10 % of the range); the ratio is the hypervolume of the trials found so far over the table's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from radio_nas.simulate.simulate import Run

TARGET_RATIO = 0.95
"""The hypervolume ratio a sweep is counted as having reached."""


def summarise(runs: Sequence[Run], pareto: set[tuple[str, str]], trials: int) -> dict[str, Any]:
    """Median and IQR ([q1, q3]) over the repeats of every figure the replay reports."""
    final = [r.ratios[-1] if r.ratios else 0.0 for r in runs]
    to95 = [r.trials_to(TARGET_RATIO) for r in runs]
    cost95 = [r.seconds_to(TARGET_RATIO) for r in runs]
    share = [len(r.found & pareto) / len(pareto) if pareto else 1.0 for r in runs]
    seconds = [r.seconds[-1] if r.seconds else 0.0 for r in runs]
    steps = [float(r.steps[-1]) if r.steps else 0.0 for r in runs]
    trained = [float(len(r.ratios)) for r in runs]
    out: dict[str, Any] = {}
    for key, vals in (
        ("hv_ratio", final),
        ("pareto_share", share),
        ("train_seconds", seconds),
        ("train_steps", steps),
        ("trained", trained),
    ):
        out[f"{key}_median"], out[f"{key}_iqr"] = median_iqr(vals)
    # "not reached" counts as infinitely late, so a median over repeats that mostly miss is None
    reach = [float(v) if v is not None else math.inf for v in to95]
    out["trials_to_95_median"], out["trials_to_95_iqr"] = median_iqr(reach)
    out["seconds_to_95_median"], out["seconds_to_95_iqr"] = median_iqr(
        [v if v is not None else math.inf for v in cost95]
    )
    out["reached_95"] = sum(v is not None for v in to95)
    out["counts_median"] = {k: float(np.median([r.counts[k] for r in runs])) for k in runs[0].counts} if runs else {}
    return out


def median_iqr(values: Sequence[float]) -> tuple[float | None, list[float | None]]:
    arr = np.array(values, dtype=float)
    if arr.size == 0:
        return None, [None, None]
    q1, med, q3 = (
        np.percentile(arr, [25, 50, 75], method="linear")
        if np.isfinite(arr).all()
        else np.percentile(arr, [25, 50, 75], method="lower")
    )
    return _plain(med), [_plain(q1), _plain(q3)]


def _plain(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# -- output ---------------------------------------------------------------------------------------------


def format_replay(out: dict[str, Any]) -> str:
    """The sampler table (Markdown) with a line on what was replayed."""
    from radio_nas._util import markdown_table as format_table

    t = out["table"]
    head = (
        f"Replay of {t['source']} (space {t['space']}: {t['points']} points, {t['ok']} fully trained, "
        f"exhaustive Pareto set {t['pareto_size']}); {out['trials']} trained trials per sweep, "
        f"{out['repeats']} repeats (seeds {out['seed']}..{out['seed'] + out['repeats'] - 1}), scheduler "
        f"{out['scheduler']}. Median [IQR]."
    )
    rows = []
    for name, s in out["samplers"].items():
        rows.append(
            {
                "sampler": name,
                "HV ratio": _mi(s["hv_ratio_median"], s["hv_ratio_iqr"], ".3f"),
                f"trials to {TARGET_RATIO:.0%}": _mi(
                    s["trials_to_95_median"], s["trials_to_95_iqr"], ".0f", missing=f">{out['trials']}"
                ),
                f"reached {TARGET_RATIO:.0%}": f"{s['reached_95']}/{out['repeats']}",
                "Pareto set found": _mi(s["pareto_share_median"], s["pareto_share_iqr"], ".0%"),
                "train s": _mi(s["train_seconds_median"], s["train_seconds_iqr"], ".0f"),
                f"train s to {TARGET_RATIO:.0%}": _mi(
                    s["seconds_to_95_median"], s["seconds_to_95_iqr"], ".0f", missing="-"
                ),
                "pruned": f"{s['counts_median'].get('pruned', 0):g}",
                "copies": f"{s['counts_median'].get('copies', 0):g}",
            }
        )
    return head + "\n" + format_table(rows)


def _mi(med: float | None, iqr: list[float | None], fmt: str, missing: str = "-") -> str:
    def f(v: float | None) -> str:
        return missing if v is None else format(v, fmt)

    return f"{f(med)} [{f(iqr[0])}, {f(iqr[1])}]"


def plot_replay(out: dict[str, Any], path: str | Path) -> Path:
    """PNG: median HV ratio (IQR band) against trained trials and against training seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    max_cost = max((max(r["seconds"], default=0.0) for runs in out["runs"].values() for r in runs), default=0.0)
    grid = np.linspace(0.0, max_cost or 1.0, 200)
    for name, runs in out["runs"].items():
        n = out["trials"]
        by_trial = np.array([_pad(r["hv_ratio"], n) for r in runs])
        x = np.arange(1, n + 1)
        q1, med, q3 = np.percentile(by_trial, [25, 50, 75], axis=0)
        (line,) = ax1.plot(x, med, label=name)
        ax1.fill_between(x, q1, q3, color=line.get_color(), alpha=0.2)
        by_cost = np.array([_at_cost(r["seconds"], r["hv_ratio"], grid) for r in runs])
        q1, med, q3 = np.percentile(by_cost, [25, 50, 75], axis=0)
        ax2.plot(grid / 60.0, med, color=line.get_color(), label=name)
        ax2.fill_between(grid / 60.0, q1, q3, color=line.get_color(), alpha=0.2)
    for ax, label in ((ax1, "trained trials"), (ax2, "simulated training time (min)")):
        ax.axhline(TARGET_RATIO, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(label)
        ax.set_ylabel("hypervolume / exhaustive")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    t = out["table"]
    fig.suptitle(
        f"Replay on {t['space']} ({t['points']} points): median and IQR over {out['repeats']} seeds, "
        f"scheduler {out['scheduler']}"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pad(values: Sequence[float], n: int) -> list[float]:
    """A run that stopped early (grid done, too many infeasible) keeps its last ratio."""
    vals = list(values)[:n]
    return vals + [vals[-1] if vals else 0.0] * (n - len(vals))


def _at_cost(seconds: Sequence[float], ratios: Sequence[float], grid: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(np.asarray(seconds, dtype=float), grid, side="right") - 1
    vals = np.asarray(ratios, dtype=float)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)] if len(vals) else 0.0, 0.0)


def format_warm_start(out: dict[str, Any]) -> str:
    """The warm-start comparison as a Markdown table."""
    from radio_nas._util import markdown_table

    n, k = out["trials"], out["source_trials"]
    head = (
        f"Warm start on {out['table']['source']} ({out['table']['points']} points): per repeat a cold sweep of {n} "
        f"trained trials, and a sweep of the same seed warm-started from a {k}-trial sweep of another seed; "
        f"new trainings until the cold sweep's final hypervolume ratio is reached. {out['repeats']} repeats, "
        "median [IQR]."
    )
    rows = []
    for name, s in out["samplers"].items():
        rows.append(
            {
                "sampler": name,
                f"cold HV after {n}": _mi(s["cold_hv_median"], s["cold_hv_iqr"], ".3f"),
                "cold: trainings to it": _mi(s["cold_new_to_reach_median"], s["cold_new_to_reach_iqr"], ".0f"),
                "imported": _mi(s["imported_median"], s["imported_iqr"], ".0f"),
                "HV of the imports": _mi(s["imported_hv_median"], s["imported_hv_iqr"], ".3f"),
                "warm: new trainings to it": _mi(
                    s["warm_new_to_reach_median"], s["warm_new_to_reach_iqr"], ".0f", missing=f">{n}"
                ),
                "warm reached": f"{s['warm_reached']}/{out['repeats']}",
                f"warm: {k} + new": _mi(
                    s["warm_total_trainings_median"], s["warm_total_trainings_iqr"], ".0f", missing="-"
                ),
                "warm fewer than cold": f"{s['warm_fewer']}/{out['repeats']}",
                f"warm HV after {n} new": _mi(s["warm_hv_median"], s["warm_hv_iqr"], ".3f"),
                f"cold: trainings to {TARGET_RATIO:.0%}": _mi(
                    s["cold_to_95_median"], s["cold_to_95_iqr"], ".0f", missing=f">{n}"
                ),
                f"warm: new trainings to {TARGET_RATIO:.0%}": _mi(
                    s["warm_new_to_95_median"], s["warm_new_to_95_iqr"], ".0f", missing=f">{n}"
                ),
            }
        )
    return head + "\n" + markdown_table(rows)
