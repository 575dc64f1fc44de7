"""From the trials of a validation study to its verdict: rank agreement, seed noise, gap share.

    from radio_nas.validate.analysis import collect, analyse, format_markdown
    fid = collect(study, plan)             # (variants, budgets, seeds) fidelity, NaN where missing
    summary = analyse(fid, plan)           # the statistics that go into validation.json
    print(format_markdown(summary))

Rankings are by mean fidelity over seeds. The shortest budget is compared with each longer one
(Kendall tau-b, Spearman rho, a percentile bootstrap CI over variants); every pair of budgets is
kept too, so the shortest budget that agrees with a 4x longer run can be read off.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radio_nas._util import markdown_table
from radio_nas.study.record import Status, read_trials
from radio_nas.validate.plan import SEED, STEPS, Plan, variant_key
from radio_nas.validate.ranking import bootstrap_ci, gap_share, kendall_tau_b, seed_std, spearman_rho

if TYPE_CHECKING:
    from optuna.study import Study

AGREEMENT_TAU = 0.7
AGREEMENT_RATIO = 4.0


def collect(study: Study, plan: Plan) -> np.ndarray:
    """Fidelity per (variant, budget, seed) of the trials that trained ok; NaN elsewhere."""
    fid = np.full((len(plan.variants), len(plan.budgets), len(plan.seeds)), np.nan)
    v_index = {variant_key(v): i for i, v in enumerate(plan.variants)}
    b_index = {b.steps: j for j, b in enumerate(plan.budgets)}
    s_index = {s: k for k, s in enumerate(plan.seeds)}
    for t in read_trials(study):
        if t.status is not Status.OK:
            continue
        value = t.metric("fidelity")
        pipeline = t.pipeline or {}
        i = v_index.get(variant_key(dict(t.params)))
        j = b_index.get(t.params.get(STEPS, pipeline.get("steps")))
        k = s_index.get(t.params.get(SEED, pipeline.get("seed")))
        if i is None or j is None or k is None or value is None or not math.isfinite(value):
            continue
        fid[i, j, k] = float(value)
    return fid


def analyse(fid: np.ndarray, plan: Plan) -> dict[str, Any]:
    """Statistics of a (variants, budgets, seeds) fidelity array; JSON-ready (NaN becomes None)."""
    s = plan.settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: variants not trained (yet)
        means = np.nanmean(fid, axis=2)
    stds = np.array([[seed_std(fid[i, j]) for j in range(fid.shape[1])] for i in range(fid.shape[0])])
    per_budget = []
    for j, b in enumerate(plan.budgets):
        col_std = stds[:, j][np.isfinite(stds[:, j])]
        noise = float(np.median(col_std)) if col_std.size else float("nan")
        trained = int(np.isfinite(fid[:, j]).sum())
        per_budget.append(
            {
                "multiple": b.multiple,
                "steps": b.steps,
                "trials_ok": trained,
                "mean_fidelity": _clean(np.mean(means[np.isfinite(means[:, j]), j]) if trained else None),
                "seed_std_median": _clean(noise),
                "seed_std_max": _clean(float(col_std.max()) if col_std.size else None),
                "gap_share_2x_noise": _clean(gap_share(means[:, j], noise)),
                "best_variant": int(np.nanargmax(means[:, j])) if np.isfinite(means[:, j]).any() else None,
            }
        )
    pairs = []
    for a in range(len(plan.budgets)):
        for c in range(a + 1, len(plan.budgets)):
            pairs.append(_compare(means, a, c, plan))
    comparisons = [p for p in pairs if p["short"] == plan.budgets[0].multiple]
    variants = []
    for i, v in enumerate(plan.variants):
        variants.append(
            {
                "index": i,
                "params": v,
                "origin_trial": plan.origin_trials[i] if i < len(plan.origin_trials) else None,
                "fidelity": {f"{b.multiple:g}": [_clean(x) for x in fid[i, j]] for j, b in enumerate(plan.budgets)},
                "mean": {f"{b.multiple:g}": _clean(means[i, j]) for j, b in enumerate(plan.budgets)},
                "seed_std": {f"{b.multiple:g}": _clean(stds[i, j]) for j, b in enumerate(plan.budgets)},
            }
        )
    sweep_noise = next((pb["seed_std_median"] for pb in per_budget if pb["multiple"] == 1.0), None)
    return {
        "n_variants": len(plan.variants),
        "budgets": per_budget,
        "seeds": list(plan.seeds),
        "comparisons": comparisons,
        "pairs": pairs,
        "variants": variants,
        "noise": {
            "sweep_seed_std": sweep_noise,
            "threshold": _clean(2 * sweep_noise) if sweep_noise is not None else None,
            "note": "median over variants of the seed std of fidelity at budget 1 (the sweep's "
            "trial length); threshold = 2x it",
        },
        "recommendation": recommend(pairs, plan),
        "closest_4x": closest(pairs),
        "bootstrap": {"n_boot": s.n_boot, "confidence": s.confidence, "seed": s.boot_seed},
    }


def _compare(means: np.ndarray, a: int, c: int, plan: Plan) -> dict[str, Any]:
    s = plan.settings
    x, y = means[:, a], means[:, c]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out: dict[str, Any] = {
        "short": plan.budgets[a].multiple,
        "long": plan.budgets[c].multiple,
        "short_steps": plan.budgets[a].steps,
        "long_steps": plan.budgets[c].steps,
        "n": int(ok.sum()),
    }
    for name, fn in (("kendall_tau", kendall_tau_b), ("spearman_rho", spearman_rho)):
        out[name] = _clean(fn(x, y)) if x.size >= 2 else None
        lo, hi = (
            bootstrap_ci(fn, x, y, n_boot=s.n_boot, confidence=s.confidence, seed=s.boot_seed)
            if x.size >= 2
            else (None, None)
        )
        out[f"{name}_ci"] = [_clean(lo), _clean(hi)]
    out["same_best"] = bool(x.size and int(np.argmax(x)) == int(np.argmax(y)))
    return out


def recommend(pairs: list[dict[str, Any]], plan: Plan) -> dict[str, Any] | None:
    """The shortest budget whose ranking agrees (tau >= 0.7) with a run >= 4x longer, if any."""
    for p in sorted(pairs, key=lambda p: (p["short"], p["long"])):
        if (
            p["long"] / p["short"] >= AGREEMENT_RATIO - 1e-9
            and p["kendall_tau"] is not None
            and p["kendall_tau"] >= AGREEMENT_TAU
        ):
            return {
                "multiple": p["short"],
                "steps": p["short_steps"],
                "against": p["long"],
                "kendall_tau": p["kendall_tau"],
                "kendall_tau_ci": p["kendall_tau_ci"],
                "rule": f"shortest budget with Kendall tau >= {AGREEMENT_TAU} against a run "
                f">= {AGREEMENT_RATIO:g}x longer",
            }
    return None


def closest(pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pair of budgets >= 4x apart with the highest Kendall tau (what to quote when none agrees)."""
    far = [p for p in pairs if p["long"] / p["short"] >= AGREEMENT_RATIO - 1e-9 and p["kendall_tau"] is not None]
    return max(far, key=lambda p: (p["kendall_tau"], -p["short"])) if far else None


def format_markdown(summary: dict[str, Any]) -> str:
    """Two Markdown tables: rank agreement per budget pair, and noise per budget."""
    conf = int(round(summary["bootstrap"]["confidence"] * 100))
    pairs = [
        {
            "short → long (steps)": f"{p['short']:g}× → {p['long']:g}× ({p['short_steps']} → {p['long_steps']})",
            "variants": p["n"],
            f"Kendall τ [{conf}% CI]": _ci(p["kendall_tau"], p["kendall_tau_ci"]),
            f"Spearman ρ [{conf}% CI]": _ci(p["spearman_rho"], p["spearman_rho_ci"]),
            "same best": "yes" if p["same_best"] else "no",
        }
        for p in summary["pairs"]
    ]
    budgets = [
        {
            "budget (steps)": f"{b['multiple']:g}× ({b['steps']})",
            "trials ok": b["trials_ok"],
            "mean fidelity": _num(b["mean_fidelity"]),
            "seed std (median / max)": f"{_num(b['seed_std_median'])} / {_num(b['seed_std_max'])}",
            "gaps > 2× noise": _pct(b["gap_share_2x_noise"]),
        }
        for b in summary["budgets"]
    ]
    lines = [markdown_table(pairs), "", markdown_table(budgets)]
    return "\n".join(lines)


def format_report(out: dict[str, Any]) -> str:
    """validation.md: what was run, on what machine, the two tables and the verdict."""
    m = out.get("machine") or {}
    budgets = ", ".join(f"{b['multiple']:g}× = {b['steps']} steps" for b in out["budgets"])
    wall = out.get("wall_s")
    rec = out.get("recommendation")
    noise = out["noise"]
    lines = [
        f"# Validation of `{out['source_space']}` (space {out['source_space_hash']})",
        "",
        f"- variants: {out['n_variants']} ({out['origin']}); budgets: {budgets}; seeds: {out['seeds']}",
        f"- trials: {out.get('counts')}; wall time {_dur(out.get('study_span_s'))} from first trial start to "
        f"last trial end (this command: {_dur(wall)}; inside the trials: {_dur(out.get('trial_wall_s_total'))})",
        f"- machine: {m.get('cpu')} ({m.get('cpus')} CPUs, torch {m.get('torch')} with {m.get('torch_threads')} "
        f"threads, Python {m.get('python')}); written {out.get('written_at')}",
        f"- study: `{out.get('study')}` in `{out.get('storage')}`",
        "",
        format_markdown(out),
        "",
        f"Seed noise at 1× (median seed std of fidelity): {_num(noise['sweep_seed_std'])}; "
        f"2× noise threshold: {_num(noise['threshold'])}.",
        "Recommended trial length: "
        + (
            f"**{rec['steps']} steps** ({rec['multiple']:g}×): Kendall τ {rec['kendall_tau']:.2f} "
            f"[{_num(rec['kendall_tau_ci'][0], 2)}, {_num(rec['kendall_tau_ci'][1], 2)}] against {rec['against']:g}×."
            if rec
            else f"none of the budgets reaches Kendall τ ≥ {AGREEMENT_TAU} against a run "
            f"≥ {AGREEMENT_RATIO:g}× longer" + _closest_text(out.get("closest_4x")) + "."
        ),
    ]
    return "\n".join(lines) + "\n"


def _closest_text(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    return (
        f" (closest: {c['short_steps']} → {c['long_steps']} steps, τ {c['kendall_tau']:.2f} "
        f"[{_num(c['kendall_tau_ci'][0], 2)}, {_num(c['kendall_tau_ci'][1], 2)}])"
    )


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plot(summary: dict[str, Any], out: Path) -> Path | None:
    """Short vs long mean fidelity per variant (seed std as error bars), one panel per longer budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = summary["comparisons"]
    if not comps:
        return None
    short = f"{comps[0]['short']:g}"
    fig, axes = plt.subplots(1, len(comps), figsize=(4.2 * len(comps), 4.0), squeeze=False)
    for ax, comp in zip(axes[0], comps):
        long = f"{comp['long']:g}"
        xs, ys, xe, ye, labels = [], [], [], [], []
        for v in summary["variants"]:
            x, y = v["mean"][short], v["mean"][long]
            if x is None or y is None:
                continue
            xs.append(x)
            ys.append(y)
            labels.append(str(v["index"]))
            xe.append(v["seed_std"][short] or 0.0)
            ye.append(v["seed_std"][long] or 0.0)
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt="o", capsize=3)
        for x, y, label in zip(xs, ys, labels):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"fidelity at {short}× ({comp['short_steps']} steps)")
        ax.set_ylabel(f"fidelity at {long}× ({comp['long_steps']} steps)")
        ax.set_title(f"τ = {_num(comp['kendall_tau'], 2)}, ρ = {_num(comp['spearman_rho'], 2)} (n={comp['n']})")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _clean(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _num(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _ci(x: float | None, ci: list[float | None]) -> str:
    if x is None:
        return "n/a"
    lo, hi = ci
    return f"{x:.2f} [{_num(lo, 2)}, {_num(hi, 2)}]"
